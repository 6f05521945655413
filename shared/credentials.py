"""Where each merchant account's gateway credentials come from.

One secret per merchant account, named `merchant-account-<id>`, value
`{"gatewayTypeId": 2, "credentials": {...}}`, with an optional `"currency": "CAD"` (ISO 4217, the
currency the account charges in; USD when absent). In Azure the secrets live in Key Vault and are cached
per account for a TTL (Key Vault allows ~4,000 reads per 10 s per vault, and a warm request should
cost none); locally they live in one JSON file keyed by account id.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.keyvault.secrets import SecretClient

SECRET_PREFIX = "merchant-account-"  # noqa: S105 (a name prefix, not a secret)
SECRET_CONTENT_TYPE = "application/json"  # noqa: S105 (a MIME type)
DEFAULT_CURRENCY = "USD"
"""The currency of an account whose secret names none (every account before currencies were kept)."""


class CredentialError(Exception):
    """Credentials could not be had. Messages name the account, never a value."""


class AccountNotFound(CredentialError):
    pass


class MalformedSecret(CredentialError):
    pass


class SourceUnavailable(CredentialError):
    """The credential source (Key Vault, the file) could not be read just now."""


@dataclass(frozen=True, repr=False)
class MerchantAccount:
    merchant_account_id: int
    gateway_type_id: int
    credentials: Mapping[str, str]
    version: str = ""
    currency: str = DEFAULT_CURRENCY
    """ISO 4217 code the account charges in: a gateway that takes no currency on the wire charges in
    it whatever a request says."""

    def __repr__(self) -> str:
        return (
            f"MerchantAccount(id={self.merchant_account_id}, gatewayTypeId={self.gateway_type_id}, "
            f"currency={self.currency}, fields={sorted(self.credentials)}, version={self.version!r})"
        )


def secret_name(merchant_account_id: int) -> str:
    return f"{SECRET_PREFIX}{merchant_account_id}"


def format_secret(gateway_type_id: int, credentials: Mapping[str, str], currency: str | None = None) -> str:
    document: dict[str, Any] = {"gatewayTypeId": gateway_type_id}
    if currency is not None:
        document["currency"] = currency
    document["credentials"] = dict(credentials)
    return json.dumps(document)


def parse_secret(merchant_account_id: int, document: Any, version: str = "") -> MerchantAccount:
    """A secret's JSON document (already decoded) as a MerchantAccount; never echoes values."""
    where = f"the secret for merchant account {merchant_account_id}"
    if not isinstance(document, dict):
        raise MalformedSecret(f"{where} is not a JSON object")
    type_id = document.get("gatewayTypeId")
    if not isinstance(type_id, int) or isinstance(type_id, bool):
        raise MalformedSecret(f"{where} has no integer gatewayTypeId")
    raw = document.get("credentials", {})
    if not isinstance(raw, dict):
        raise MalformedSecret(f"{where} has credentials that are not an object")
    credentials: dict[str, str] = {}
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise MalformedSecret(f"{where} has a non-text value for {key!r}")
        credentials[str(key)] = str(value)
    currency = document.get("currency", DEFAULT_CURRENCY)
    if not (isinstance(currency, str) and len(currency) == 3 and currency.isascii() and currency.isalpha()):
        raise MalformedSecret(f"{where} has a currency that is not an ISO 4217 code such as USD")
    return MerchantAccount(merchant_account_id, type_id, credentials, version, currency.upper())


class CredentialStore(Protocol):
    def get(self, merchant_account_id: int) -> MerchantAccount:
        """The account's current credentials (possibly cached)."""
        ...

    def refresh(self, merchant_account_id: int) -> MerchantAccount:
        """The account's credentials read from the source now, replacing any cached copy."""
        ...


class FileCredentialStore:
    """The embedded default for local runs: one JSON file keyed by account id, re-read when it
    changes so a local 'rotation' is picked up too."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._loaded: tuple[float, dict[str, Any]] | None = None

    def _document(self) -> dict[str, Any]:
        try:
            mtime = self._path.stat().st_mtime
        except OSError:
            raise SourceUnavailable(f"credentials file {self._path.name} cannot be read") from None
        with self._lock:
            if self._loaded is None or self._loaded[0] != mtime:
                try:
                    document = json.loads(self._path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    raise SourceUnavailable(f"credentials file {self._path.name} is not valid JSON") from None
                if not isinstance(document, dict):
                    raise SourceUnavailable(f"credentials file {self._path.name} is not a JSON object")
                self._loaded = (mtime, document)
            return self._loaded[1]

    def get(self, merchant_account_id: int) -> MerchantAccount:
        document = self._document().get(str(merchant_account_id))
        if document is None:
            raise AccountNotFound(f"no credentials for merchant account {merchant_account_id}")
        return parse_secret(merchant_account_id, document)

    def refresh(self, merchant_account_id: int) -> MerchantAccount:
        return self.get(merchant_account_id)


class KeyVaultSecrets:
    """Reads `merchant-account-<id>` secrets through the Azure SDK's SecretClient, uncached."""

    def __init__(self, client: SecretClient) -> None:
        self._client = client

    @property
    def client(self) -> SecretClient:
        """The underlying SecretClient, for operator tools that write and list secrets."""
        return self._client

    @classmethod
    def connect(
        cls,
        vault_url: str,
        credential: TokenCredential | None = None,
        **client_options: Any,
    ) -> KeyVaultSecrets:
        # Imported here so a process on file credentials never loads the Azure SDKs.
        from azure.keyvault.secrets import SecretClient

        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        # The SDK defaults (10 retries, 300 s timeouts) would outlast the 230 s HTTP trigger.
        options: dict[str, Any] = {"retry_total": 2, "connection_timeout": 5, "read_timeout": 10}
        options.update(client_options)
        return cls(SecretClient(vault_url, credential, **options))

    def read_value(self, name: str) -> str:
        """One secret's current value (e.g. the idempotency HMAC key)."""
        from azure.core.exceptions import AzureError

        try:
            value = self._client.get_secret(name).value
        except AzureError as error:
            raise SourceUnavailable(f"secret {name} could not be read ({type(error).__name__})") from None
        if not value:
            raise MalformedSecret(f"secret {name} has no value")
        return value

    def load(self, merchant_account_id: int) -> MerchantAccount:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        name = secret_name(merchant_account_id)
        try:
            secret = self._client.get_secret(name)
        except ResourceNotFoundError:
            raise AccountNotFound(f"no secret {name} in Key Vault") from None
        except AzureError as error:
            raise SourceUnavailable(f"Key Vault could not be read ({type(error).__name__})") from None
        if secret.value is None:
            raise MalformedSecret(f"secret {name} has no value")
        try:
            document = json.loads(secret.value)
        except ValueError:
            raise MalformedSecret(f"secret {name} is not JSON") from None
        return parse_secret(merchant_account_id, document, secret.properties.version or "")


@dataclass
class _Entry:
    account: MerchantAccount
    fetched_at: float
    generation: int


class CachedCredentialStore:
    """A TTL cache in front of a loader, one entry per account.

    Deliberate shared state: bounded (LRU), guarded by a lock, and single-flight per account so a
    cold start under load makes one Key Vault read per account, not one per request. A warm entry
    keeps serving through a source outage; a deleted secret stops being served at once.
    """

    def __init__(
        self,
        load: Callable[[int], MerchantAccount],
        ttl_seconds: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._ttl = ttl_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._loading: dict[int, threading.Lock] = {}
        self._generation = 0

    def get(self, merchant_account_id: int) -> MerchantAccount:
        entry = self._fresh(merchant_account_id)
        if entry is not None:
            return entry.account
        return self._reload(merchant_account_id, force=False)

    def refresh(self, merchant_account_id: int) -> MerchantAccount:
        return self._reload(merchant_account_id, force=True)

    def _fresh(self, merchant_account_id: int) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(merchant_account_id)
            if entry is None or self._clock() - entry.fetched_at >= self._ttl:
                return None
            self._entries.move_to_end(merchant_account_id)
            return entry

    def _reload(self, merchant_account_id: int, *, force: bool) -> MerchantAccount:
        with self._lock:
            gate = self._loading.setdefault(merchant_account_id, threading.Lock())
            seen = self._generation
        with gate:
            with self._lock:
                entry = self._entries.get(merchant_account_id)
            # Another thread loaded it while this one waited for the gate: that read is fresh enough.
            if entry is not None and entry.generation > seen:
                return entry.account
            fresh = None if force else self._fresh(merchant_account_id)
            if fresh is not None:
                return fresh.account
            try:
                account = self._load(merchant_account_id)
            except SourceUnavailable:
                if entry is not None:
                    return entry.account
                raise
            except AccountNotFound:
                self._forget(merchant_account_id)
                raise
            self._store(merchant_account_id, account)
            return account

    def _store(self, merchant_account_id: int, account: MerchantAccount) -> None:
        with self._lock:
            self._generation += 1
            self._entries[merchant_account_id] = _Entry(account, self._clock(), self._generation)
            self._entries.move_to_end(merchant_account_id)
            while len(self._entries) > self._max_entries:
                evicted, _ = self._entries.popitem(last=False)
                self._loading.pop(evicted, None)

    def _forget(self, merchant_account_id: int) -> None:
        with self._lock:
            self._entries.pop(merchant_account_id, None)
            self._loading.pop(merchant_account_id, None)
