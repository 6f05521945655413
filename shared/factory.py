"""From a merchant account to a ready gateway object."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateways.base import CredentialField, Gateway, GatewayContext
from gateways.http import HttpPool
from gateways.registry import gateway_type
from shared.contract import CURRENCIES
from shared.credentials import (
    AccountNotFound,
    CredentialError,
    CredentialStore,
    MalformedSecret,
    MerchantAccount,
    parse_secret,
)
from shared.errors import (
    CredentialsMalformed,
    CredentialsUnavailable,
    CurrencyMismatch,
    GatewayTypeMismatch,
    InvalidRequestCredentials,
    MerchantAccountNotConfigured,
    UnknownGatewayType,
)
from shared.settings import Settings

SIMULATOR_TYPE_ID = 900


def normalise_credentials(
    fields: tuple[CredentialField, ...], raw: Mapping[str, str], merchant_account_id: int
) -> dict[str, str]:
    """The secret's values under the gateway's declared field names. Keys match case-insensitively
    and by label or alias (V1's SQL labelled some fields otherwise, e.g. a username `Login`)."""
    names: dict[str, str] = {}
    for spec in fields:
        for alias in (spec.name, spec.label, *spec.aliases):
            names[alias.lower()] = spec.name
    values: dict[str, str] = {}
    for key, value in raw.items():
        name = names.get(key.lower())
        if name is not None:
            values[name] = value
    missing = [spec.name for spec in fields if spec.required and not values.get(spec.name)]
    if missing:
        raise CredentialsMalformed(
            f"the credentials for merchant account {merchant_account_id} lack {', '.join(missing)}"
        )
    return values


def require_currency(account: MerchantAccount, currency: str | None) -> None:
    """Refuse a request in another currency than the account's, before any gateway call. A gateway
    that takes no currency on the wire charges in the account's, so a CAD request on a USD account
    would be charged in USD; every gateway is held to the same rule."""
    if currency is None or currency == account.currency:
        return
    numeric = {code: number for number, code in CURRENCIES.items()}
    takes = f"{account.currency} ({numeric[account.currency]})" if account.currency in numeric else account.currency
    message = f"merchant account {account.merchant_account_id} takes {takes}, not {currency}"
    raise CurrencyMismatch(message, errors=[{"field": "currencyType", "message": message}])


class GatewayFactory:
    def __init__(self, settings: Settings, credentials: CredentialStore, http: HttpPool) -> None:
        self._settings = settings
        self._credentials = credentials
        self._http = http

    @property
    def credentials(self) -> CredentialStore:
        """The store accounts are read from (the health probe reads it too)."""
        return self._credentials

    def gateway_class(self, type_id: int) -> type[Gateway]:
        cls = gateway_type(type_id)
        if cls is None or (type_id == SIMULATOR_TYPE_ID and not self._settings.enable_simulator):
            raise UnknownGatewayType(f"gatewayTypeId {type_id} is not a supported gateway type")
        return cls

    def account(self, merchant_account_id: int, *, refresh: bool = False) -> MerchantAccount:
        try:
            if refresh:
                return self._credentials.refresh(merchant_account_id)
            return self._credentials.get(merchant_account_id)
        except AccountNotFound:
            raise MerchantAccountNotConfigured(
                f"merchant account {merchant_account_id} is not configured: no credentials are stored for it"
            ) from None
        except MalformedSecret as error:
            raise CredentialsMalformed(str(error)) from None
        except CredentialError as error:
            raise CredentialsUnavailable(str(error)) from None

    def create(
        self,
        cls: type[Gateway],
        merchant_account_id: int,
        *,
        request_credentials: Mapping[str, Any] | None = None,
        refresh: bool = False,
        deadline: float | None = None,
    ) -> tuple[Gateway, MerchantAccount]:
        """A gateway for the account; with `deadline` (`time.monotonic()`), its calls stop by then."""
        if request_credentials is not None:
            account = self._request_account(cls, merchant_account_id, request_credentials)
        else:
            account = self.account(merchant_account_id, refresh=refresh)
        if account.gateway_type_id != cls.type_id:
            raise GatewayTypeMismatch(
                f"merchant account {merchant_account_id} is not a {cls.name} account "
                f"(gatewayTypeId {cls.type_id} requested)"
            )
        try:
            values = normalise_credentials(cls.credential_fields, account.credentials, merchant_account_id)
        except CredentialsMalformed as error:
            if request_credentials is None:
                raise
            raise InvalidRequestCredentials(f"{error.detail} (sent in the request)") from None
        http = self._http if deadline is None else self._http.until(deadline)
        base_url = cls.base_url(self._settings.gateway_environment, self._settings.gateway_url_overrides)
        context = GatewayContext(merchant_account_id, base_url, http)
        return cls(values, context), account

    def _request_account(
        self, cls: type[Gateway], merchant_account_id: int, request_credentials: Mapping[str, Any]
    ) -> MerchantAccount:
        """Migration period only (ALLOW_REQUEST_CREDENTIALS): V1 sent the secrets in the body. An
        account that already has a stored secret is still at the gateway (and in the currency) that
        secret names, whatever the body claims; one without is taken at the request's word, which is
        what the setting is for."""
        try:
            stored = self.account(merchant_account_id)
        except MerchantAccountNotConfigured:
            document: dict[str, Any] = {"gatewayTypeId": cls.type_id}
        else:
            document = {"gatewayTypeId": stored.gateway_type_id, "currency": stored.currency}
        try:
            return parse_secret(merchant_account_id, {**document, "credentials": request_credentials})
        except CredentialError as error:
            raise InvalidRequestCredentials(str(error)) from None
