"""Operator CLI for merchant-account secrets in Key Vault (security and ops; never deployed).

    python -m tools.accounts [--vault-url https://<vault>.vault.azure.net] COMMAND
    (the vault URL may come from KEY_VAULT_URL instead; sign-in is DefaultAzureCredential: az login,
    a managed identity, ...)

    set ACCOUNT_ID --gateway-type ID [--currency CODE] [--from-file PATH | -] [--updated-by NAME]
        [--change-type]
        Write or rotate `merchant-account-<ACCOUNT_ID>` (a new version; the service picks it up within
        its credential cache TTL, 300 s by default). Prompts for each credential field the gateway
        type declares without echoing (an optional one, a per-merchant option, is left out when
        answered empty), or reads a JSON object of field to value from PATH (`-`:
        standard input), e.g. {"username": "...", "password": "...", "merchantId": "..."}; the
        contract's {"gatewayTypeId": 2, "currency": "CAD", "credentials": {...}} is accepted too.
        --currency (ISO 4217, e.g. CAD) is the currency the account charges in; without it a
        rotation keeps the secret's current currency and a new account has none (USD). Refuses an
        unregistered gateway type, a missing field, a currency the gateway type cannot take, and a
        change of an existing account's gateway type unless --change-type is given. Needs the Key
        Vault Secrets Officer role.
    show ACCOUNT_ID
        Gateway type, currency, version, update time and field names; values masked (see `mask`).
    list
        Every merchant-account-* secret with its gatewayTypeId tag; reads no secret values.
    verify ACCOUNT_ID
        Asks the gateway whether it accepts the account's credentials without charging anyone, through
        the gateway's `verify_credentials()` (gateway URLs from the same settings as the service).

Exit codes:
    0  done; for verify: the gateway accepted the credentials
    1  refused: unknown gateway type, a missing field, a currency the gateway type cannot take, an
       unreadable --from-file, a gateway type change without --change-type; for verify: the gateway
       rejected the credentials
    2  error: Key Vault unreachable or access denied, no such secret, a malformed secret, bad
       settings, the gateway unreachable or failing, a usage error

No output ever holds a credential value: prompts go through getpass, messages name fields only.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from gateways.base import Gateway
from gateways.errors import CredentialsRejected, GatewayError
from gateways.http import HttpPool, Timeouts
from gateways.registry import gateway_type, gateway_types
from shared.credentials import (
    DEFAULT_CURRENCY,
    SECRET_CONTENT_TYPE,
    SECRET_PREFIX,
    CredentialError,
    KeyVaultSecrets,
    MerchantAccount,
    format_secret,
    parse_secret,
    secret_name,
)
from shared.errors import ServiceError
from shared.factory import SIMULATOR_TYPE_ID, GatewayFactory, normalise_credentials
from shared.settings import Settings, SettingsError

if TYPE_CHECKING:
    from azure.core.exceptions import AzureError
    from azure.keyvault.secrets import SecretClient

OK, REFUSED, ERROR = 0, 1, 2
MASK = "****"
REVEAL_MIN_LENGTH = 10
"""Identifiers at least this long show their last four characters; anything shorter shows none."""
IDENTIFIER_FIELD = re.compile(r"(?:[a-z0-9]Id|ID|_id)$")

Prompt = Callable[[str], str]


class Refused(Exception):
    """The operator's request is refused (exit 1); the message names fields, never values."""


class Failed(Exception):
    """The request could not be carried out (exit 2); the message names fields, never values."""


def gateway_class(type_id: int) -> type[Gateway] | None:
    """The registered gateway class for `type_id`; never the simulator, which has no place in a vault."""
    if type_id == SIMULATOR_TYPE_ID:
        return None
    return gateway_type(type_id)


def mask(field: str, value: str) -> str:
    """`value` for display: identifiers (`merchantId`, `processingId`) of ten or more characters keep
    their last four so an operator can tell accounts apart; everything else (passwords, keys, user
    names, short values) shows nothing of itself."""
    if IDENTIFIER_FIELD.search(field) and len(value) >= REVEAL_MIN_LENGTH:
        return MASK + value[-4:]
    return MASK


def redact(text: str, values: Iterable[str]) -> str:
    """`text` with every occurrence of any of `values` masked: for gateway messages we do not control."""
    for value in sorted((v for v in values if v), key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


def account_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an account id") from None
    if value < 1:
        raise argparse.ArgumentTypeError("an account id is a positive integer")
    return value


def registered_types() -> str:
    return ", ".join(
        f"{type_id} {cls.name}" for type_id, cls in sorted(gateway_types().items()) if gateway_class(type_id)
    )


def require_gateway(type_id: int) -> type[Gateway]:
    cls = gateway_class(type_id)
    if cls is None:
        raise Refused(f"gateway type {type_id} is not registered (registered: {registered_types() or 'none'})")
    return cls


def timestamp(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else "-"


def operator_name() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def currency_from_document(document: Any) -> str | None:
    """The currency of a --from-file document in the contract's shape, if it names one."""
    if isinstance(document, dict) and isinstance(document.get("credentials"), dict):
        currency = document.get("currency")
        if currency is not None and not isinstance(currency, str):
            raise Refused("the file's currency is not text")
        return currency
    return None


def raw_from_document(document: Any, type_id: int) -> dict[str, str]:
    """A --from-file document's credential values as text, by key; never echoes a value."""
    if isinstance(document, dict) and isinstance(document.get("credentials"), dict):
        declared = document.get("gatewayTypeId", type_id)
        if declared != type_id:
            raise Refused(f"the file is for gatewayTypeId {declared}, not {type_id}")
        document = document["credentials"]
    if not isinstance(document, dict):
        raise Refused("the file must hold a JSON object of credential field names to values")
    raw: dict[str, str] = {}
    for key, value in document.items():
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise Refused(f"the file's value for {key!r} is not text")
        raw[str(key)] = str(value)
    return raw


def read_file(source: str, stdin: TextIO, type_id: int) -> tuple[dict[str, str], str | None]:
    """The file's credential values, and the currency it names (contract shape only)."""
    try:
        text = stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as error:
        raise Refused(f"cannot read {source} ({type(error).__name__})") from None
    try:
        document = json.loads(text)
    except ValueError:
        # json's message quotes the offending text, which may be a credential.
        raise Refused(f"{'standard input' if source == '-' else source} is not valid JSON") from None
    return raw_from_document(document, type_id), currency_from_document(document)


def checked_currency(cls: type[Gateway], currency: str) -> str:
    code = currency.strip().upper()
    if not (len(code) == 3 and code.isascii() and code.isalpha()):
        raise Refused(f"currency {currency!r} is not an ISO 4217 code such as USD or CAD")
    if code not in cls.currencies:
        raise Refused(f"{cls.name} cannot take currency {code} (it takes {', '.join(sorted(cls.currencies))})")
    return code


def read_prompts(cls: type[Gateway], prompt: Prompt) -> dict[str, str]:
    raw: dict[str, str] = {}
    for spec in sorted(cls.credential_fields, key=lambda spec: spec.display_order):
        optional = "" if spec.required else " [optional: Enter leaves it out]"
        try:
            value = prompt(f"{cls.name} {spec.label} ({spec.name}){optional}: ").strip()
        except (EOFError, KeyboardInterrupt):
            raise Refused("aborted: nothing was written") from None
        if value or spec.required:
            raw[spec.name] = value
    return raw


def current_account(client: SecretClient, name: str) -> tuple[bool, MerchantAccount | None, str | None]:
    """Whether the secret exists, what it holds now (None if nothing readable), and the currency it
    names explicitly (so that a rotation keeps it)."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        secret = client.get_secret(name)
    except ResourceNotFoundError:
        return False, None, None
    try:
        document = json.loads(secret.value or "")
        account = parse_secret(0, document)
    except (ValueError, CredentialError):
        return True, None, None
    return True, account, account.currency if "currency" in document else None


def command_set(args: argparse.Namespace, secrets: KeyVaultSecrets, prompt: Prompt, stdin: TextIO) -> int:
    cls = require_gateway(args.gateway_type)
    file_currency = None
    if args.currency is not None:
        checked_currency(cls, args.currency)  # before any prompt: a typo costs no typing
    if args.from_file is None:
        raw = read_prompts(cls, prompt)
    else:
        raw, file_currency = read_file(args.from_file, stdin, cls.type_id)
    try:
        values = normalise_credentials(cls.credential_fields, raw, args.account_id)
    except ServiceError as error:
        raise Refused(f"nothing was written: {error.detail}") from None
    known = {alias.lower() for spec in cls.credential_fields for alias in (spec.name, spec.label, *spec.aliases)}
    ignored = sorted(key for key in raw if key.lower() not in known)
    if ignored:
        print(f"ignored fields {cls.name} does not declare: {', '.join(ignored)}", file=sys.stderr)

    name = secret_name(args.account_id)
    client = secrets.client
    exists, existing, existing_currency = current_account(client, name)
    if existing is not None and existing.gateway_type_id != cls.type_id and not args.change_type:
        raise Refused(
            f"{name} holds gateway type {existing.gateway_type_id}; writing type {cls.type_id} moves the account "
            "to another gateway: pass --change-type if that is intended"
        )
    currency = args.currency or file_currency or existing_currency
    if currency is not None:
        currency = checked_currency(cls, currency)
    tags = {"gatewayTypeId": str(cls.type_id), "gatewayTypeName": cls.name, "updatedBy": args.updated_by}
    document = format_secret(cls.type_id, values, currency)
    stored = client.set_secret(name, document, content_type=SECRET_CONTENT_TYPE, tags=tags)
    verb = "rotated" if exists else "created"
    print(
        f"{name}: {verb}, version {stored.properties.version} "
        f"(gateway type {cls.type_id} {cls.name}; currency {currency or DEFAULT_CURRENCY + ' (default)'}; "
        f"fields {', '.join(values)})"
    )
    return OK


def command_show(args: argparse.Namespace, secrets: KeyVaultSecrets) -> int:
    from azure.core.exceptions import ResourceNotFoundError

    name = secret_name(args.account_id)
    try:
        secret = secrets.client.get_secret(name)
    except ResourceNotFoundError:
        raise Failed(f"no secret {name} in the vault") from None
    try:
        document = json.loads(secret.value or "")
        account = parse_secret(args.account_id, document, secret.properties.version or "")
    except ValueError:
        raise Failed(f"secret {name} is not JSON") from None
    except CredentialError as error:
        raise Failed(str(error)) from None
    cls = gateway_class(account.gateway_type_id)
    properties = secret.properties
    tags = properties.tags or {}
    lines = [
        name,
        f"  gateway type: {account.gateway_type_id} ({cls.name if cls else 'not registered here'})",
        f"  currency:     {account.currency}{'' if 'currency' in document else ' (default)'}",
        f"  version:      {properties.version or '-'}",
        f"  updated:      {timestamp(properties.updated_on)}",
        f"  updated by:   {tags.get('updatedBy', '-')}",
        f"  content type: {properties.content_type or '-'}",
        "  fields:",
    ]
    width = max((len(key) for key in account.credentials), default=0)
    lines += [f"    {key.ljust(width)}  {mask(key, value)}" for key, value in account.credentials.items()]
    if cls is not None:
        try:
            normalise_credentials(cls.credential_fields, account.credentials, args.account_id)
        except ServiceError as error:
            lines.append(f"  problem:      {error.detail}")
    print("\n".join(lines))
    return OK


def command_list(secrets: KeyVaultSecrets) -> int:
    rows: list[tuple[int, str]] = []
    for properties in secrets.client.list_properties_of_secrets():
        name = properties.name or ""
        suffix = name.removeprefix(SECRET_PREFIX)
        if not name.startswith(SECRET_PREFIX) or not suffix.isdigit():
            continue
        tags = properties.tags or {}
        type_text = tags.get("gatewayTypeId", "?")
        if "gatewayTypeId" in tags:
            cls = gateway_class(int(type_text)) if type_text.isdigit() else None
            type_text += f" ({cls.name})" if cls else " (not registered here)"
        else:
            type_text += " (untagged: see show)"
        state = "" if properties.enabled in (True, None) else "  disabled"
        rows.append(
            (int(suffix), f"{name}  gatewayTypeId {type_text}  updated {timestamp(properties.updated_on)}{state}")
        )
    for _, row in sorted(rows):
        print(row)
    print(f"{len(rows)} merchant account(s)")
    return OK


class _LoadedAccount:
    """A CredentialStore holding the one account already read, so verify reads Key Vault once."""

    def __init__(self, account: MerchantAccount) -> None:
        self._account = account

    def get(self, merchant_account_id: int) -> MerchantAccount:
        return self._account

    def refresh(self, merchant_account_id: int) -> MerchantAccount:
        return self._account


def command_verify(args: argparse.Namespace, secrets: KeyVaultSecrets, settings: Settings | None) -> int:
    try:
        account = secrets.load(args.account_id)
    except CredentialError as error:
        raise Failed(str(error)) from None
    cls = gateway_class(account.gateway_type_id)
    if cls is None:
        name = secret_name(args.account_id)
        raise Failed(f"{name} is for gateway type {account.gateway_type_id}, which is not registered here")
    try:
        settings = settings or Settings.from_env()
    except SettingsError as error:
        raise Failed(str(error)) from None
    http = HttpPool(Timeouts(settings.gateway_connect_timeout_seconds, settings.gateway_timeout_seconds))
    values = account.credentials.values()
    try:
        gateway, _ = GatewayFactory(settings, _LoadedAccount(account), http).create(cls, args.account_id)
        gateway.verify_credentials()
    except ServiceError as error:
        raise Failed(redact(error.detail, values)) from None
    except CredentialsRejected as error:
        print(f"{cls.name} rejected the credentials of account {args.account_id}: {redact(error.message, values)}")
        return REFUSED
    except GatewayError as error:
        raise Failed(f"{cls.name} could not verify ({type(error).__name__}): {redact(error.message, values)}") from None
    finally:
        http.close()
    print(f"{cls.name} accepted the credentials of account {args.account_id}")
    return OK


def describe(error: AzureError) -> str:
    """A Key Vault failure for the operator: the kind, the HTTP status and Key Vault's own words (which
    never hold a secret value)."""
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

    if isinstance(error, ClientAuthenticationError) and error.status_code is None:
        return f"cannot sign in to Azure ({type(error).__name__}): run `az login` or check the identity"
    if isinstance(error, HttpResponseError):
        code = error.error.code if error.error else error.reason
        first_line = (error.message or "").splitlines()[0] if error.message else ""
        return f"Key Vault answered HTTP {error.status_code} {code}: {first_line}"
    return f"Key Vault could not be reached ({type(error).__name__})"


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="python -m tools.accounts",
        description="Merchant-account secrets in Key Vault: set (write or rotate), show, list, verify.",
    )
    cli.add_argument("--vault-url", help="https://<vault>.vault.azure.net (default: KEY_VAULT_URL)")
    commands = cli.add_subparsers(dest="command", required=True)
    set_command = commands.add_parser("set", help="write or rotate an account's secret")
    set_command.add_argument("account_id", type=account_id, metavar="ACCOUNT_ID")
    set_command.add_argument("--gateway-type", type=int, required=True, metavar="ID")
    set_command.add_argument("--currency", metavar="CODE", help="ISO 4217 currency the account charges in")
    set_command.add_argument("--from-file", metavar="PATH", help="JSON object of field to value; - for stdin")
    set_command.add_argument("--updated-by", default=operator_name(), help="recorded in the updatedBy tag")
    set_command.add_argument("--change-type", action="store_true", help="allow moving the account to another type")
    for command, text in (("show", "an account's secret, values masked"), ("verify", "check with the gateway")):
        sub = commands.add_parser(command, help=text)
        sub.add_argument("account_id", type=account_id, metavar="ACCOUNT_ID")
    commands.add_parser("list", help="every merchant account secret and its gateway type tag")
    return cli


def connect(vault_url: str | None) -> KeyVaultSecrets:
    url = (vault_url or os.environ.get("KEY_VAULT_URL") or "").strip()
    if not url:
        raise Failed("no vault: pass --vault-url or set KEY_VAULT_URL")
    if not url.startswith("https://"):
        raise Failed("the vault URL must start with https://")
    return KeyVaultSecrets.connect(url)


def main(
    argv: Sequence[str] | None = None,
    *,
    secrets: KeyVaultSecrets | None = None,
    prompt: Prompt = getpass.getpass,
    stdin: TextIO | None = None,
    settings: Settings | None = None,
) -> int:
    from azure.core.exceptions import AzureError

    try:
        args = parser().parse_args(argv)
    except SystemExit as exit_:
        return OK if exit_.code in (0, None) else ERROR
    try:
        secrets = secrets or connect(args.vault_url)
        if args.command == "set":
            return command_set(args, secrets, prompt, stdin or sys.stdin)
        if args.command == "show":
            return command_show(args, secrets)
        if args.command == "list":
            return command_list(secrets)
        return command_verify(args, secrets, settings)
    except Refused as error:
        print(f"refused: {error}", file=sys.stderr)
        return REFUSED
    except Failed as error:
        print(f"error: {error}", file=sys.stderr)
        return ERROR
    except AzureError as error:
        print(f"error: {describe(error)}", file=sys.stderr)
        return ERROR


if __name__ == "__main__":
    sys.exit(main())
