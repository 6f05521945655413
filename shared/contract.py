"""The monolith's V1 contract: the `BVMeta` header, both request bodies and the response envelope.

Every rule in `../shared/contract/v1-api.md` is enforced here, at the edge; money is `Decimal` from
this point on. Validation messages name fields and rules, never the values that broke them, so a
card number cannot reach a response or a log through an error.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from gateways.cards import luhn_valid, redact_card_numbers

_MASKED_CARD = re.compile(r"[^0-9]*[0-9]{4}")

CURRENCIES: dict[int, str] = {840: "USD", 124: "CAD", 826: "GBP", 978: "EUR"}
"""ISO 4217 numeric codes the monolith sends, and their alphabetic codes for the gateways."""

SERVICE_NAME = "PaymentGatewayAPI"

ZIP_MAX_CHARACTERS = 9
"""A postal code's letters and digits (spaces and dashes aside): the shortest limit among the
gateways, which a US ZIP+4 fits once its dash is dropped. A cut postal code is another one, so
longer ones are refused."""
_ZIP_SEPARATORS = re.compile(r"[ -]")

MAX_ID = 2**31 - 1
"""The monolith's ids are SQL Server `int` identity columns. The bound also keeps every key built
from an id (a Table partition key holds at most 1 KiB) far from any storage limit."""

Id = Annotated[StrictInt, Field(ge=1, le=MAX_ID)]
"""An id this service looks something up by (a gateway type, a merchant account)."""
RecordedId = Annotated[StrictInt, Field(ge=0, le=MAX_ID)]
"""An id this service only records (the university, the user). 0 stands for none: `tools.smoke`
sends it so that its calls are not taken for a real user's."""
CurrencyCode = Annotated[StrictInt, Field(ge=1, le=999)]
"""ISO 4217 numeric codes have three digits; the validators below narrow them to `CURRENCIES`."""

ShortText = Annotated[str, StringConstraints(max_length=100)]
LongText = Annotated[str, StringConstraints(max_length=255)]

MAX_CREDENTIAL_FIELDS = 16
# Not trimmed: a secret's surrounding spaces are part of it, and a name is matched as sent.
CredentialName = Annotated[str, StringConstraints(strip_whitespace=False, min_length=1, max_length=64)]
CredentialValue = Annotated[str, StringConstraints(strip_whitespace=False, max_length=1024)] | StrictInt
Credentials = Annotated[dict[CredentialName, CredentialValue], Field(max_length=MAX_CREDENTIAL_FIELDS)]


def _json_number(value: Any) -> Any:
    # Pydantic's lax Decimal also reads text, Unicode digits and underscores included ("\u0661\u0662\u0663" is
    # 123, "1_000" is 1000); the contract says number. A bool is an int to Python, not a number.
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError("must be a JSON number")
    return value


def _number_only(schema: dict[str, Any]) -> None:
    # The schema of what is accepted: the number branch of pydantic's Decimal schema, no text.
    branches = schema.pop("anyOf")
    schema.update(next(branch for branch in branches if branch.get("type") == "number"))


Amount = Annotated[
    Decimal,
    Field(gt=0, decimal_places=2, allow_inf_nan=False, json_schema_extra=_number_only),
    BeforeValidator(_json_number),
]


def mask_card(number: str) -> str:
    """The contract's masked form: x for every digit but the last four."""
    return "x" * (len(number) - 4) + number[-4:]


class BVMeta(BaseModel):
    model_config = ConfigDict(extra="ignore")

    transactionId: str
    universityId: RecordedId
    userId: RecordedId

    @field_validator("transactionId")
    @classmethod
    def _uuid(cls, value: str) -> str:
        try:
            uuid.UUID(value)
        except ValueError:
            raise ValueError("must be a UUID") from None
        return value


class _GatewayCall(BaseModel):
    # V1 ignored fields it did not know; the monolith may send more than we read.
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    gatewayTypeId: Id
    gatewayTypeName: ShortText | None = None
    merchantAccountId: Id
    credentials: Credentials | None = Field(default=None, repr=False)
    userId: RecordedId


@dataclass(frozen=True)
class TokenType:
    """What the contract accepts as one type of card token, checked before any gateway sees it."""

    pattern: str
    """The value's characters (a full match; the OpenAPI document states the same pattern)."""
    lengths: tuple[int, int]
    """The value's least and greatest length."""
    shape: str
    """The shape in words, for the 422."""
    expiry: bool = False
    """The gateway needs the card's expiry beside the token: `expDate` is required, else refused."""
    descriptor: str | None = None
    """The tokenizer names the value's format: `descriptor` is required and matches this, else refused."""

    def accepts(self, value: str) -> bool:
        low, high = self.lengths
        return value.isascii() and low <= len(value) <= high and re.fullmatch(self.pattern, value) is not None


TOKEN_TYPES: dict[str, TokenType] = {
    # A CardSecure token goes where a card number would (its gateway's `account`, at most 19). It is
    # not a card number and need not pass Luhn. An all-digit one starts with 9, which no card number
    # CardSecure tokenizes does: a card number sent as a token is refused, never charged as one.
    "cardsecure": TokenType(
        "9[0-9]*|[0-9]*[A-Za-z][0-9A-Za-z]*", (12, 19), "12 to 19 letters or digits; all digits: starting with 9",
        expiry=True,
    ),
    "payload_payment_method": TokenType("pm_[0-9A-Za-z]+", (4, 64), "pm_ and letters or digits, at most 64"),
    "authorizenet_opaque": TokenType(
        "[0-9A-Za-z+/=]+", (1, 4096), "base64 characters, at most 4096", descriptor="[A-Z0-9]+(\\.[A-Z0-9]+)*"
    ),
    # A tokenizer's own test-mode payment methods (pm_card_visa, pm_card_chargeDeclined...) hold underscores.
    "stripe_payment_method": TokenType(
        "pm_[0-9A-Za-z_]+", (4, 255), "pm_ and letters, digits or underscores, at most 255"
    ),
}
"""The card-token types of the contract (`token.type`), each made by one gateway's browser tokenizer
(docs/tokens.md). Which of them an account takes is its gateway's declaration (`token_kinds`)."""
DESCRIPTOR_MAX_LENGTH = 64


class PaymentToken(BaseModel):
    """A card as a gateway's browser tokenizer handed it over, sent instead of `account`/`cvv2`.
    A secret like a card number: never logged, stored or echoed; validation messages name the
    rule, never the value."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    type: str
    value: str = Field(repr=False)
    descriptor: Annotated[str, StringConstraints(max_length=DESCRIPTOR_MAX_LENGTH)] | None = Field(
        default=None, validate_default=True
    )

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in TOKEN_TYPES:
            raise ValueError(f"must be one of {', '.join(TOKEN_TYPES)}")
        return value

    @field_validator("value")
    @classmethod
    def _shape(cls, value: str, info: ValidationInfo) -> str:
        kind = TOKEN_TYPES.get(info.data.get("type", ""))
        if kind is not None and not kind.accepts(value):
            raise ValueError(f"is not a {info.data['type']} token ({kind.shape})")
        return value

    @field_validator("descriptor")
    @classmethod
    def _descriptor(cls, value: str | None, info: ValidationInfo) -> str | None:
        kind = TOKEN_TYPES.get(info.data.get("type", ""))
        if kind is None:
            return value
        if kind.descriptor is None:
            if value is not None:
                with_one = ", ".join(name for name, other in TOKEN_TYPES.items() if other.descriptor)
                raise ValueError(f"is sent only with {with_one}")
            return value
        if value is None or not (value.isascii() and re.fullmatch(kind.descriptor, value)):
            raise ValueError(f"is required for {info.data['type']}: the tokenizer's data descriptor")
        return value


class Carries(enum.Enum):
    CARD = enum.auto()
    TOKEN = enum.auto()
    REFUSED_TOKEN = enum.auto()
    """The token was refused; its 422 already says what is wrong, so the card's fields are not judged."""


def _carries(info: ValidationInfo) -> Carries:
    # `token` is declared before the card's fields: it is validated first, and absent from
    # `info.data` when it was refused.
    if "token" not in info.data:
        return Carries.REFUSED_TOKEN
    return Carries.CARD if info.data["token"] is None else Carries.TOKEN


class PaymentBody(_GatewayCall):
    # A body carries a card (`account`, `expDate`, `cvv2`: V1, unchanged) or a `token` (with `expDate`
    # when its type needs it), never both. The card's fields are validated even when absent
    # (validate_default), which is where "required without a token" is said, per field.
    token: PaymentToken | None = Field(default=None, repr=False)
    account: str | None = Field(default=None, repr=False, validate_default=True)
    expDate: str | None = Field(default=None, repr=False, validate_default=True)
    cvv2: str | None = Field(default=None, repr=False, validate_default=True)
    amount: Amount
    currencyType: CurrencyCode
    name: ShortText | None = None
    street: LongText | None = None
    city: ShortText | None = None
    state: ShortText | None = None
    country: ShortText | None = None
    zip: Annotated[str, StringConstraints(max_length=10)] | None = None
    comment: LongText | None = None
    userName: LongText | None = None

    @field_validator("account")
    @classmethod
    def _card_number(cls, value: str | None, info: ValidationInfo) -> str | None:
        number = _card_field(value, info)
        if number is None:
            return value
        if not (number.isascii() and number.isdigit() and 13 <= len(number) <= 19):
            raise ValueError("must be 13 to 19 digits")
        if not luhn_valid(number):
            raise ValueError("is not a valid card number (Luhn check failed)")
        return value

    @field_validator("expDate")
    @classmethod
    def _expiry(cls, value: str | None, info: ValidationInfo) -> str | None:
        carries = _carries(info)
        if carries is Carries.REFUSED_TOKEN:
            return value
        token: PaymentToken | None = info.data["token"]
        if token is not None and not TOKEN_TYPES[token.type].expiry:
            if value is not None:
                raise ValueError(f"is not sent with a {token.type} token")
            return value
        if value is None:
            raise ValueError("Field required")
        if not (len(value) == 4 and value.isascii() and value.isdigit()):
            raise ValueError("must be MMYY")
        month, year = int(value[:2]), 2000 + int(value[2:])
        if not 1 <= month <= 12:
            raise ValueError("month must be 01 to 12")
        today: dt.date = (info.context or {}).get("today") or dt.datetime.now(dt.UTC).date()
        if (year, month) < (today.year, today.month):
            raise ValueError("card has expired")
        return value

    @field_validator("cvv2")
    @classmethod
    def _cvv(cls, value: str | None, info: ValidationInfo) -> str | None:
        cvv = _card_field(value, info)
        if cvv is None:
            return value
        if not (cvv.isascii() and cvv.isdigit() and 3 <= len(cvv) <= 4):
            raise ValueError("must be 3 or 4 digits")
        return value

    @field_validator("amount")
    @classmethod
    def _amount_bound(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        limit = (info.context or {}).get("max_amount")
        if limit is not None and value > limit:
            raise ValueError(f"must be at most {limit}")
        return value

    @field_validator("currencyType")
    @classmethod
    def _currency(cls, value: int) -> int:
        if value not in CURRENCIES:
            raise ValueError(f"must be one of {sorted(CURRENCIES)} (ISO 4217 numeric)")
        return value

    @field_validator("zip", mode="before")
    @classmethod
    def _zip(cls, value: Any) -> Any:
        # V1 accepted a number here; it is kept as text so leading zeros of the next one survive.
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("zip")
    @classmethod
    def _zip_fits(cls, value: str | None, info: ValidationInfo) -> str | None:
        # `country` is declared before `zip`, so it is validated (and in info.data) by now.
        if not value:
            return value
        compact = _ZIP_SEPARATORS.sub("", value)
        if len(compact) > ZIP_MAX_CHARACTERS:
            raise ValueError(f"must have at most {ZIP_MAX_CHARACTERS} letters or digits besides spaces and dashes")
        country = info.data.get("country")
        if country and country.upper() == "US" and not (compact.isascii() and compact.isdigit()
                                                         and len(compact) in (5, 9)):
            raise ValueError("must be a US ZIP code (5 digits, or ZIP+4: 9 digits, e.g. 12345-6789) for country US")
        return value

    @property
    def currency(self) -> str:
        return CURRENCIES[self.currencyType]

    @property
    def postal_code(self) -> str | None:
        return self.zip

    @property
    def masked_card_number(self) -> str | None:
        """From the card number; None for a token (the gateway's answer tells the last four)."""
        return None if self.account is None else mask_card(self.account)


def _card_field(value: str | None, info: ValidationInfo) -> str | None:
    """For `account` and `cvv2`: the value to check as the card's, or None when there is nothing to
    check (a token came instead, or the token was refused). Required without a token; refused with
    one (a card number beside a token would be sent nowhere, and must not be taken as accepted)."""
    carries = _carries(info)
    if carries is Carries.REFUSED_TOKEN:
        return None
    if carries is Carries.TOKEN:
        if value is not None:
            raise ValueError("is not sent with a token")
        return None
    if value is None:
        raise ValueError("Field required")
    return value


class RefundBody(_GatewayCall):
    paymentTransactionId: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    amount: Amount | None = None
    comment: LongText | None = None
    maskedCardNumber: Annotated[str, StringConstraints(max_length=19)] | None = None
    currencyType: CurrencyCode | None = None

    @field_validator("amount")
    @classmethod
    def _amount_bound(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        limit = (info.context or {}).get("max_amount")
        if value is not None and limit is not None and value > limit:
            raise ValueError(f"must be at most {limit}")
        return value

    @field_validator("currencyType")
    @classmethod
    def _currency(cls, value: int | None) -> int | None:
        if value is not None and value not in CURRENCIES:
            raise ValueError(f"must be one of {sorted(CURRENCIES)} (ISO 4217 numeric)")
        return value

    @field_validator("maskedCardNumber")
    @classmethod
    def _masked(cls, value: str | None) -> str | None:
        # Only the last four may be digits: a full card number here would be stored and logged.
        # ASCII only: str.isdigit() also takes superscript, Arabic-Indic and fullwidth digits.
        if value is not None and not (value.isascii() and _MASKED_CARD.fullmatch(value)):
            raise ValueError("must be masked, e.g. xxxxxxxxxxxx1111")
        return value

    @property
    def currency(self) -> str | None:
        return None if self.currencyType is None else CURRENCIES[self.currencyType]


class Detail(BaseModel):
    """The envelope's `detail`, the same on success and failure."""

    success: bool
    statusCode: str
    gatewayHttpStatusCode: int | None = None
    responseMessage: str = ""
    responseDetail: str = ""
    paymentTransactionId: str | None = None
    merchantAccountId: int | None = None
    errorCode: str | None = None
    """On failures: the standard error (declined, expired_card, ...) beside the gateway's own code."""
    errors: list[dict[str, str]] | None = None

    @field_validator("statusCode", "responseMessage", "responseDetail")
    @classmethod
    def _no_card_numbers(cls, value: str) -> str:
        # Gateway text is not ours, and a gateway may echo what it was sent: a card number stops
        # here, for every envelope answered, stored and replayed. Ids are left as they are: they
        # must round-trip, and no gateway issues a Luhn-valid 13-19 digit one.
        return redact_card_numbers(value)


class Envelope(BaseModel):
    detail: Detail

    def to_json(self) -> str:
        # `errors` appears only on validation failures; every other key is always present.
        exclude = {"detail": {"errors"}} if self.detail.errors is None else None
        return self.model_dump_json(exclude=exclude)
