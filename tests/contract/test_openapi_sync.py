"""docs/openapi.yaml stays in step with the code that enforces the contract.

shared/contract.py is the source of truth for every field rule, shared/errors.py for every status.
These tests read both and fail when the spec drifts from them: a field added or dropped, a bound
changed, a status the error mapping can produce but the spec does not document.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from decimal import Decimal
from typing import Any, get_args

import jsonschema_rs
import pytest
import schemathesis
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from gateways.errors import GatewayError, StandardError
from shared.contract import (
    CURRENCIES,
    DESCRIPTOR_MAX_LENGTH,
    MAX_ID,
    TOKEN_TYPES,
    ZIP_MAX_CHARACTERS,
    Amount,
    BVMeta,
    Detail,
    Envelope,
    PaymentBody,
    PaymentToken,
    RefundBody,
    luhn_valid,
)
from shared.errors import ServiceError, _gateway_status, approved, from_gateway_error, from_service_error
from shared.settings import Settings
from tools.openapi_check import (
    OPERATIONS,
    SPEC_PATH,
    body_schema,
    load_spec,
    property_types,
    resolve,
    response_validator,
)

SPEC = load_spec()
MODELS: dict[str, type[BaseModel]] = {"processPayment": PaymentBody, "processRefund": RefundBody}


def _subclasses(cls: type) -> list[type]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_subclasses(sub))
    return found


def producible_statuses() -> dict[int, set[str]]:
    """Every HTTP status shared/errors.py (and the endpoint's last line of defence) can answer,
    with the headers each one carries."""
    statuses: dict[int, set[str]] = {200: set(), 500: set()}
    for cls in _subclasses(ServiceError):
        answer = from_service_error(cls("x"))
        statuses.setdefault(answer.status, set()).update(answer.headers)
    for gateway_cls in _subclasses(GatewayError):
        status, _, headers = _gateway_status(gateway_cls("x"))
        statuses.setdefault(status, set()).update(headers)
    return statuses


def _model_property(model: type[BaseModel], name: str) -> dict[str, Any]:
    prop: dict[str, Any] = model.model_json_schema(by_alias=True)["properties"][name]
    return prop


def _model_types(prop: dict[str, Any]) -> set[str]:
    if "anyOf" in prop:
        return {t for branch in prop["anyOf"] for t in _model_types(branch)}
    return {prop["type"]} if "type" in prop else set()


def _model_bound(prop: dict[str, Any], key: str) -> Any:
    for branch in [prop, *prop.get("anyOf", [])]:
        if key in branch:
            return branch[key]
    return None


# --- the document itself ---------------------------------------------------------------------


def test_spec_is_valid_openapi_3_1() -> None:
    assert str(SPEC["openapi"]).startswith("3.1")
    loaded = schemathesis.openapi.from_path(SPEC_PATH)
    loaded.validate()
    labels = {op.ok().label for op in loaded.get_all_operations()}
    assert labels == {"POST /paymentGateway/processPayment", "PATCH /paymentGateway/processRefund", "GET /health"}


def test_every_component_schema_is_valid_json_schema_2020_12() -> None:
    with pytest.raises(jsonschema_rs.ValidationError):
        jsonschema_rs.meta.validate({"type": "integer", "minimum": "one"})
    for name, schema in SPEC["components"]["schemas"].items():
        jsonschema_rs.meta.validate(schema)
        # Compiled against the whole document, which resolves its references.
        response_validator(SPEC, f"#/components/schemas/{name}")


def test_the_validator_rejects_a_broken_spec() -> None:
    broken = copy.deepcopy(SPEC)
    broken["paths"]["/paymentGateway/processPayment"]["post"]["responses"] = "none"
    with pytest.raises(jsonschema_rs.ValidationError):
        schemathesis.openapi.from_dict(broken).validate()


def test_routes_match_function_json() -> None:
    for folder, operation_id in (("ProcessPayment", "processPayment"), ("ProcessRefund", "processRefund")):
        binding = json.loads((SPEC_PATH.parent.parent / folder / "function.json").read_text())["bindings"][0]
        path, method = OPERATIONS[operation_id]
        assert "/" + binding["route"] == path
        assert binding["methods"] == [method]
        assert binding["authLevel"] == "function"
    scheme = SPEC["components"]["securitySchemes"]["functionKey"]
    assert scheme == {**scheme, "type": "apiKey", "in": "header", "name": "x-functions-key"}
    assert SPEC["security"] == [{"functionKey": []}]


def test_health_matches_its_function_and_the_code() -> None:
    from shared import health

    binding = json.loads((SPEC_PATH.parent.parent / "Health" / "function.json").read_text())["bindings"][0]
    operation = SPEC["paths"]["/" + binding["route"]]["get"]
    assert binding["methods"] == ["get"]
    assert binding["authLevel"] == "anonymous"
    assert operation["security"] == [], "probes carry no key"
    probe = next(p for p in operation["parameters"] if p["name"] == "probe")
    assert set(probe["schema"]["enum"]) == {p.value for p in health.Probe}
    assert probe["schema"]["default"] == health.Probe.READY.value
    schemas = SPEC["components"]["schemas"]
    assert set(schemas["HealthCheckStatus"]["enum"]) == {s.value for s in health.Status}
    assert set(schemas["HealthReport"]["properties"]["checks"]["properties"]) == set(health._unconfigured().checks)
    assert set(operation["responses"]) == {"200", "400", "503"}
    validator = response_validator(SPEC, "#/components/schemas/HealthReport")
    for report in (health._unconfigured(), health.Report({}), health.Report(dict.fromkeys(
        health._unconfigured().checks, health.Status.TIMED_OUT))):
        validator.validate(report.to_json())


# --- request bodies --------------------------------------------------------------------------


@pytest.mark.parametrize("operation_id", sorted(MODELS))
def test_body_properties_and_required_match_the_model(operation_id: str) -> None:
    model = MODELS[operation_id]
    model_schema = model.model_json_schema(by_alias=True)
    spec_schema = body_schema(SPEC, operation_id)
    assert set(spec_schema["properties"]) == set(model_schema["properties"])
    assert sorted(spec_schema["required"]) == sorted(model_schema["required"])
    # V1 ignored fields it did not know, and so does the model.
    assert model.model_config.get("extra") == "ignore"
    assert spec_schema.get("additionalProperties", True) is True


@pytest.mark.parametrize("operation_id", sorted(MODELS))
def test_types_nullability_and_string_lengths_match_the_model(operation_id: str) -> None:
    model = MODELS[operation_id]
    spec_schema = body_schema(SPEC, operation_id)
    for name, spec_prop in spec_schema["properties"].items():
        prop = _model_property(model, name)
        model_types = _model_types(prop)
        spec_types = property_types(spec_prop)
        if name == "zip":
            # V1 sent numbers; the model's before-validator turns an int into text.
            model_types |= {"integer"}
        assert spec_types == model_types, name
        low, high = VALIDATOR_LENGTHS.get(name, (None, None))
        assert (_model_bound(prop, "minLength") or low) == _first(spec_prop, "minLength"), name
        assert (_model_bound(prop, "maxLength") or high) == _first(spec_prop, "maxLength"), name


# Length bounds a field validator enforces rather than a length constraint (checked just below).
VALIDATOR_LENGTHS: dict[str, tuple[int | None, int | None]] = {"maskedCardNumber": (4, None), "account": (13, 19)}


def _luhn_of_length(length: int) -> str:
    body = "4" + "0" * (length - 2)
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


def test_validator_lengths_are_what_the_validators_enforce() -> None:
    assert _accepted(RefundBody, _refund(maskedCardNumber="1234"))
    assert not _accepted(RefundBody, _refund(maskedCardNumber="234"))
    low, high = VALIDATOR_LENGTHS["account"]
    assert low is not None and high is not None
    assert _accepted(PaymentBody, _payment(account=_luhn_of_length(low)))
    assert _accepted(PaymentBody, _payment(account=_luhn_of_length(high)))
    assert not _accepted(PaymentBody, _payment(account=_luhn_of_length(low - 1)))
    assert not _accepted(PaymentBody, _payment(account=_luhn_of_length(high + 1)))


def _first(spec_prop: dict[str, Any], key: str) -> Any:
    for branch in [spec_prop, *spec_prop.get("anyOf", [])]:
        if key in branch and ("type" not in branch or "string" in property_types(branch)):
            return branch[key]
    return None


@pytest.mark.parametrize("operation_id", sorted(MODELS))
def test_numeric_bounds_and_enums_match_the_model(operation_id: str) -> None:
    model = MODELS[operation_id]
    props = body_schema(SPEC, operation_id)["properties"]

    # Every integer field is bounded (ids fit the monolith's SQL int and a Table key), alike in both.
    for name, spec_prop in props.items():
        prop = _model_property(model, name)
        if "integer" not in _model_types(prop) or name == "zip":
            continue
        bounds = (_model_bound(prop, "minimum"), _model_bound(prop, "maximum"))
        assert None not in bounds, name
        assert (_model_bound(spec_prop, "minimum"), _model_bound(spec_prop, "maximum")) == bounds, name
    for name in ("gatewayTypeId", "merchantAccountId", "userId"):
        assert _model_bound(_model_property(model, name), "maximum") == MAX_ID == 2**31 - 1
    assert _model_bound(_model_property(model, "merchantAccountId"), "minimum") == 1

    amount = props["amount"]
    (amount_info,) = [a for a in get_args(Amount)[1:] if isinstance(a, FieldInfo)]
    gt = next(m.gt for m in amount_info.metadata if hasattr(m, "gt"))
    places = next(m.decimal_places for m in amount_info.metadata if getattr(m, "decimal_places", None))
    assert _model_bound(_model_property(model, "amount"), "exclusiveMinimum") == gt
    assert amount["exclusiveMinimum"] == gt == 0
    assert Decimal(str(amount["multipleOf"])) == Decimal(1).scaleb(-places)
    assert Decimal(str(amount["maximum"])) == Settings().max_amount == Settings.from_env({}).max_amount

    currency = props["currencyType"]
    enum = [v for v in currency["enum"] if v is not None]
    assert sorted(enum) == sorted(CURRENCIES)
    assert (None in currency["enum"]) == ("null" in property_types(currency))

    if model is PaymentBody:
        max_zip = _model_bound(_model_property(model, "zip"), "maxLength")
        integer = next(b for b in props["zip"]["anyOf"] if b.get("type") == "integer")
        # An int is kept as its text, which must fit the string bound and hold at most
        # ZIP_MAX_CHARACTERS digits (a minus sign counts as a separator, like a dash).
        assert integer["maximum"] == 10**ZIP_MAX_CHARACTERS - 1
        assert integer["minimum"] == -(10**ZIP_MAX_CHARACTERS - 1)
        assert len(str(integer["minimum"])) <= max_zip
        for value in (integer["maximum"], integer["minimum"]):
            PaymentBody.model_validate({**_payment(), "zip": value})
        for value in (integer["maximum"] + 1, integer["minimum"] - 1):
            with pytest.raises(ValidationError):
                PaymentBody.model_validate({**_payment(), "zip": value})


def test_bvmeta_parameter_matches_the_model() -> None:
    for operation_id in MODELS:
        path, method = OPERATIONS[operation_id]
        params = [resolve(SPEC, p) for p in SPEC["paths"][path][method]["parameters"]]
        by_name = {p["name"]: p for p in params}
        assert by_name["BVMeta"]["in"] == "header" and by_name["BVMeta"]["required"] is True
        assert by_name["Idempotency-Key"]["required"] is False
        assert by_name["Idempotency-Key"]["schema"]["maxLength"] == 255
    schema = resolve(SPEC, SPEC["components"]["parameters"]["BVMeta"]["content"]["application/json"]["schema"])
    model_schema = BVMeta.model_json_schema()
    assert set(schema["properties"]) == set(model_schema["properties"])
    assert sorted(schema["required"]) == sorted(model_schema["required"])
    for name, prop in schema["properties"].items():
        model_prop = model_schema["properties"][name]
        assert prop["type"] == model_prop["type"], name
        for bound in ("minimum", "maximum"):
            assert prop.get(bound) == model_prop.get(bound), (name, bound)
    university = schema["properties"]["universityId"]
    assert (university["minimum"], university["maximum"]) == (0, MAX_ID)


# Patterns: every string a spec pattern allows is accepted by the model (bar Luhn and today's date,
# which JSON Schema cannot say), and the model refuses what the pattern refuses for these samples.

TODAY = dt.date(2030, 6, 15)


def _payment(**overrides: Any) -> dict[str, Any]:
    body = {
        "gatewayTypeId": 900,
        "merchantAccountId": 1001,
        "userId": 1,
        "account": "4242424242424242",
        "expDate": "1239",
        "cvv2": "123",
        "amount": Decimal("1.00"),
        "currencyType": 840,
    }
    body.update(overrides)
    return body


def _refund(**overrides: Any) -> dict[str, Any]:
    body = {"gatewayTypeId": 900, "merchantAccountId": 1001, "userId": 1, "paymentTransactionId": "p1"}
    body.update(overrides)
    return body


def _accepted(model: type[BaseModel], body: dict[str, Any]) -> bool:
    try:
        model.model_validate(body, context={"today": TODAY})
    except ValidationError:
        return False
    return True


def _pattern(operation_id: str, name: str) -> str:
    pattern: str = body_schema(SPEC, operation_id)["properties"][name]["pattern"]
    return pattern


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_strings_the_spec_patterns_allow_are_accepted(data: st.DataObject) -> None:
    cvv = data.draw(st.from_regex(_pattern("processPayment", "cvv2"), fullmatch=True))
    assert _accepted(PaymentBody, _payment(cvv2=cvv)), cvv
    exp = data.draw(st.from_regex(_pattern("processPayment", "expDate"), fullmatch=True))
    not_past = (2000 + int(exp[2:]), int(exp[:2])) >= (TODAY.year, TODAY.month)
    assert _accepted(PaymentBody, _payment(expDate=exp)) == not_past, exp
    card = data.draw(st.from_regex(_pattern("processPayment", "account"), fullmatch=True))
    assert _accepted(PaymentBody, _payment(account=card)) == luhn_valid(card), card
    masked = data.draw(st.from_regex(_pattern("processRefund", "maskedCardNumber"), fullmatch=True))
    masked = masked[-19:]
    assert _accepted(RefundBody, _refund(maskedCardNumber=masked)), masked
    zip_pattern = next(b["pattern"] for b in body_schema(SPEC, "processPayment")["properties"]["zip"]["anyOf"]
                       if "pattern" in b)
    postal = data.draw(st.from_regex(zip_pattern, fullmatch=True))[:10]
    assert _accepted(PaymentBody, _payment(zip=postal)), postal
    payment_id = data.draw(st.from_regex(_pattern("processRefund", "paymentTransactionId"), fullmatch=True))
    assert _accepted(RefundBody, _refund(paymentTransactionId=payment_id[:64])), payment_id


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("cvv2", "12"),
        ("cvv2", "12345"),
        ("cvv2", "12a"),
        ("cvv2", "١٢٣"),
        ("expDate", "1330"),
        ("expDate", "0030"),
        ("expDate", "123"),
        ("expDate", "12/30"),
        ("account", "424242424242"),
        ("account", "42424242424242424242"),
        ("account", "4242 4242 4242 4242"),
    ],
)
def test_strings_the_spec_patterns_refuse_are_refused(field: str, value: str) -> None:
    import re

    assert re.fullmatch(_pattern("processPayment", field), value) is None
    assert not _accepted(PaymentBody, _payment(**{field: value}))


# --- card tokens -----------------------------------------------------------------------------


def _token_branches() -> dict[str, dict[str, Any]]:
    token = SPEC["components"]["schemas"]["PaymentToken"]
    return {branch["properties"]["type"]["const"]: branch for branch in token["oneOf"]}


def test_token_types_their_shapes_and_descriptors_match_the_contract() -> None:
    token = SPEC["components"]["schemas"]["PaymentToken"]
    assert set(token["properties"]) == set(PaymentToken.model_fields)
    assert sorted(token["required"]) == sorted(PaymentToken.model_json_schema()["required"])
    assert token["additionalProperties"] is False and PaymentToken.model_config.get("extra") == "forbid"
    assert token["properties"]["type"]["enum"] == list(TOKEN_TYPES)
    assert _token_branches().keys() == TOKEN_TYPES.keys()
    descriptor = token["properties"]["descriptor"]
    assert descriptor["maxLength"] == DESCRIPTOR_MAX_LENGTH
    assert token["properties"]["value"]["maxLength"] == max(kind.lengths[1] for kind in TOKEN_TYPES.values())
    for name, branch in _token_branches().items():
        kind = TOKEN_TYPES[name]
        value = branch["properties"]["value"]
        assert value["pattern"] == f"^({kind.pattern})$" or value["pattern"] == f"^{kind.pattern}$", name
        assert (value["minLength"], value["maxLength"]) == kind.lengths, name
        if kind.descriptor is None:
            assert branch["properties"]["descriptor"] == {"type": "null"}, name
        else:
            assert branch["required"] == ["descriptor"], name
            assert descriptor["pattern"] == f"^{kind.descriptor}$", name


def test_which_token_types_take_the_expiry_matches_the_contract() -> None:
    branches = {branch["title"]: branch for branch in body_schema(SPEC, "processPayment")["oneOf"]}
    with_expiry = branches["card token sent with the card's expiry"]
    alone = branches["card token alone"]
    assert with_expiry["required"] == ["token", "expDate"] and "expDate" not in alone["required"]
    assert set(with_expiry["properties"]["token"]["properties"]["type"]["enum"]) == {
        name for name, kind in TOKEN_TYPES.items() if kind.expiry
    }
    assert set(alone["properties"]["token"]["properties"]["type"]["enum"]) == {
        name for name, kind in TOKEN_TYPES.items() if not kind.expiry
    }
    assert branches["card number"]["required"] == ["account", "expDate", "cvv2"]


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_token_values_the_spec_allows_are_accepted(data: st.DataObject) -> None:
    for name, branch in _token_branches().items():
        rule = branch["properties"]["value"]
        value = data.draw(
            st.from_regex(rule["pattern"], fullmatch=True).filter(
                lambda v, rule=rule: rule["minLength"] <= len(v) <= rule["maxLength"]
            )
        )
        token: dict[str, Any] = {"type": name, "value": value}
        if TOKEN_TYPES[name].descriptor is not None:
            token["descriptor"] = data.draw(st.from_regex(_token_descriptor_pattern(), fullmatch=True).filter(
                lambda d: len(d) <= DESCRIPTOR_MAX_LENGTH))
        body = _payment(token=token, account=None, cvv2=None, expDate="1239" if TOKEN_TYPES[name].expiry else None)
        assert _accepted(PaymentBody, body), body


def _token_descriptor_pattern() -> str:
    pattern: str = SPEC["components"]["schemas"]["PaymentToken"]["properties"]["descriptor"]["pattern"]
    return pattern


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("cardsecure", "4242424242424242"),
        ("cardsecure", "94185941"),
        ("cardsecure", "9418 5941 6453 1111"),
        ("payload_payment_method", "txn_3bW9JMoHcb1u4GHb8m7Dl"),
        ("stripe_payment_method", "pm_3bW9-JMoHcb"),
        ("authorizenet_opaque", "eyJjb2Rl IjoiNTBf"),
    ],
)
def test_token_values_the_spec_refuses_are_refused(name: str, value: str) -> None:
    import re

    rule = _token_branches()[name]["properties"]["value"]
    assert not (re.fullmatch(rule["pattern"], value) and rule["minLength"] <= len(value) <= rule["maxLength"])
    token = {"type": name, "value": value, "descriptor": "COMMON.ACCEPT.INAPP.PAYMENT"}
    if TOKEN_TYPES[name].descriptor is None:
        del token["descriptor"]
    body = _payment(token=token, account=None, cvv2=None, expDate="1239" if TOKEN_TYPES[name].expiry else None)
    assert not _accepted(PaymentBody, body)


# --- responses -------------------------------------------------------------------------------


@pytest.mark.parametrize("operation_id", sorted(MODELS))
def test_every_status_the_service_can_answer_is_documented(operation_id: str) -> None:
    path, method = OPERATIONS[operation_id]
    responses = SPEC["paths"][path][method]["responses"]
    for status, headers in producible_statuses().items():
        assert str(status) in responses, f"{operation_id} does not document {status}"
        response = resolve(SPEC, responses[str(status)])
        assert "application/json" in response.get("content", {}), status
        documented = {name.lower(): resolve(SPEC, h) for name, h in response.get("headers", {}).items()}
        assert "bvmeta" in documented, status
        for header in headers:
            assert header.lower() in documented, (status, header)


def test_retry_after_is_required_exactly_where_every_path_sends_it() -> None:
    always: dict[int, bool] = {}
    for cls in _subclasses(ServiceError):
        answer = from_service_error(cls("x"))
        always[answer.status] = always.get(answer.status, True) and "Retry-After" in answer.headers
    for gateway_cls in _subclasses(GatewayError):
        status, _, headers = _gateway_status(gateway_cls("x"))
        always[status] = always.get(status, True) and "Retry-After" in headers
    for status, required in always.items():
        response = resolve(SPEC, SPEC["components"]["responses"][_response_name(status)])
        header = response.get("headers", {}).get("Retry-After")
        documented_required = bool(header and resolve(SPEC, header).get("required"))
        assert documented_required == required, status


def _response_name(status: int) -> str:
    path, method = OPERATIONS["processPayment"]
    ref: str = SPEC["paths"][path][method]["responses"][str(status)]["$ref"]
    return ref.rsplit("/", 1)[1]


def test_detail_schema_matches_the_model() -> None:
    spec_detail = SPEC["components"]["schemas"]["Detail"]
    model = Detail.model_json_schema()
    assert set(spec_detail["properties"]) == set(model["properties"])
    # `to_json` drops only `errors` when it is None: every other key is always sent.
    assert sorted(spec_detail["required"]) == sorted(set(model["properties"]) - {"errors"})
    for name, prop in spec_detail["properties"].items():
        types = _model_types(model["properties"][name])
        if name == "errors":
            types -= {"null"}  # never sent as null, left out instead
        assert property_types(prop) == types, name
    assert set(spec_detail["properties"]["errorCode"]["enum"]) == {str(s) for s in StandardError} | {None}


def _sample_answers() -> list[tuple[int, dict[str, Any]]]:
    from gateways.base import GatewayResult

    samples = [
        approved(GatewayResult("t1", "sale", "approved", "Approval", 200), 1001),
        approved(GatewayResult("t2", "void", "approved", "Approval", 200), 1001),
    ]
    for cls in _subclasses(ServiceError):
        errors = [{"field": "amount", "message": "must be greater than 0"}] if cls.status == 422 else None
        samples.append(from_service_error(cls("x", errors=errors)))
    for gateway_cls in _subclasses(GatewayError):
        error = gateway_cls("no", code="c", http_status=200, transaction_id=None)
        samples.append(from_gateway_error(error, 1001))
    return [(a.status, json.loads(a.body)) for a in samples]


@pytest.mark.parametrize("operation_id", sorted(MODELS))
def test_envelopes_the_code_builds_conform_to_the_spec(operation_id: str) -> None:
    path, method = OPERATIONS[operation_id]
    responses = SPEC["paths"][path][method]["responses"]
    from shared.flow import unserved

    internal = unserved({})
    answers = [*_sample_answers(), (internal.status, json.loads(internal.body))]
    for status, body in answers:
        pointer = _content_schema_pointer(responses[str(status)])
        validator = response_validator(SPEC, pointer)
        assert validator.is_valid(body), (status, body, list(validator.iter_errors(body))[:3])
        flipped = {"detail": {**body["detail"], "success": not body["detail"]["success"]}}
        assert not validator.is_valid(flipped), status
        Envelope.model_validate(body)


def _content_schema_pointer(response: dict[str, Any]) -> str:
    name = response["$ref"].rsplit("/", 1)[1]
    return f"#/components/responses/{name}/content/application~1json/schema"
