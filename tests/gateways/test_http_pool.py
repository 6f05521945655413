"""HttpPool: https only, one session per base URL, no retries, and failures classified by whether
the request can have reached the gateway."""

from __future__ import annotations

import ssl

import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from gateways.base import GatewayUnreachable, OutcomeUnknown, luhn_valid
from gateways.http import (
    FILTERED,
    HttpPool,
    InsecureUrlError,
    _classify,
    base_url_key,
    scrub_transcript,
)
from tests.fakes import CardConnectFake, unused_local_url
from tests.gateways.helpers import CC_MERCHANTS, CC_MID, TIMEOUTS


@pytest.mark.parametrize("url", ["http://api.payload.com/transactions", "ftp://127.0.0.1/x", "/relative"])
def test_plain_http_is_refused_except_for_loopback(url: str) -> None:
    with pytest.raises(InsecureUrlError):
        HttpPool(TIMEOUTS).send("GET", url, auth=("k", ""))


def test_base_url_key_is_scheme_host_and_port() -> None:
    assert (
        base_url_key("https://fts-uat.cardconnect.com/cardconnect/rest/auth") == "https://fts-uat.cardconnect.com:443"
    )
    assert base_url_key("http://localhost:8080/x") == "http://localhost:8080"
    assert base_url_key("http://[::1]:9/x") == "http://::1:9"


def test_one_session_per_base_url_bounded_and_without_credentials(cc_fake: CardConnectFake) -> None:
    pool = HttpPool(TIMEOUTS, max_sessions=2)
    auth = CC_MERCHANTS[CC_MID]
    for host in ("127.0.0.1", "127.0.0.1", "localhost"):
        pool.send("GET", f"http://{host}:{cc_fake.port}/cardconnect/rest/inquireMerchant/{CC_MID}", auth=auth)
    sessions = list(pool._sessions.values())
    assert len(sessions) == 2
    for session in sessions:
        assert session.auth is None and "Authorization" not in session.headers
        adapter = session.get_adapter("https://example.com")
        assert isinstance(adapter, HTTPAdapter)
        assert adapter.max_retries.total == 0 and adapter._pool_maxsize >= 32  # type: ignore[attr-defined]
    pool.close()
    assert pool._sessions == {}


def test_refused_connection_is_unreachable() -> None:
    with pytest.raises(GatewayUnreachable):
        HttpPool(TIMEOUTS).send("POST", unused_local_url() + "/auth", auth=("u", "p"), json={})


def _wrapped(reason: Exception, kind: type[requests.RequestException] = requests.ConnectionError) -> Exception:
    return kind(MaxRetryError(None, "/auth", reason))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (requests.ConnectTimeout(), GatewayUnreachable),
        (_wrapped(NewConnectionError(None, "refused")), GatewayUnreachable),  # type: ignore[arg-type]
        (_wrapped(ssl.SSLCertVerificationError("bad certificate")), GatewayUnreachable),
        (requests.ReadTimeout(), OutcomeUnknown),
        (requests.ConnectionError(ProtocolError("Connection aborted.", ConnectionResetError())), OutcomeUnknown),
        (requests.exceptions.ChunkedEncodingError(), OutcomeUnknown),
        (_wrapped(ssl.SSLError("record layer failure"), requests.exceptions.SSLError), OutcomeUnknown),
    ],
)
def test_failures_are_classified_by_whether_the_request_can_have_left(
    error: requests.RequestException, expected: type[Exception]
) -> None:
    assert type(_classify(error, "PUT", "gateway.example")) is expected


@pytest.mark.parametrize("mode", ["slow", "drop", "http500"])
def test_failures_after_sending_are_unknown_outcomes(cc_fake: CardConnectFake, mode: str) -> None:
    cc_fake.set_fault(mode, seconds=1.0)
    with pytest.raises(OutcomeUnknown):
        HttpPool(TIMEOUTS).send("GET", f"{cc_fake.base_url}/inquireMerchant/{CC_MID}", auth=CC_MERCHANTS[CC_MID])
    assert len(cc_fake.requests) == 1, "never retried"


def test_transcript_hook_sees_the_real_exchange(cc_fake: CardConnectFake) -> None:
    seen: list[str] = []
    pool = HttpPool(TIMEOUTS, transcript=seen.append)
    pool.send("PUT", f"{cc_fake.base_url}/auth", auth=CC_MERCHANTS[CC_MID], json={"merchid": CC_MID, "amount": "1.00"})
    [text] = seen
    assert text.startswith(f"PUT {cc_fake.base_url}/auth\n")
    assert "Authorization: Basic " in text and '"merchid": "800000000001"' in text and "HTTP 200" in text


def test_scrub_transcript_filters_headers_fields_forms_and_stray_card_numbers() -> None:
    text = (
        "Authorization: Basic dXNlcjpwYXNz\nauthorization: Bearer secret_key_x\n"
        '{"card_number": "4242424242424242", "card_code": 987, "retref": "123456789012"}\n'
        "payment_method[card][card_number]=4111111111111111&payment_method[card][card_code]=987&amount=5\n"
        "note 4788250000121443 and order 1234567890123\n"
    )
    names = ["card_number", "card_code"]
    scrubbed = scrub_transcript(text, json_fields=names, form_fields=names)
    assert scrubbed == (
        f"Authorization: Basic {FILTERED}\nauthorization: Bearer {FILTERED}\n"
        f'{{"card_number": "{FILTERED}", "card_code": "{FILTERED}", "retref": "123456789012"}}\n'
        f"payment_method[card][card_number]={FILTERED}&payment_method[card][card_code]={FILTERED}&amount=5\n"
        f"note {FILTERED} and order 1234567890123\n"
    )


def test_luhn() -> None:
    assert luhn_valid("4242424242424242") and luhn_valid("4788250000121443")
    assert not luhn_valid("4242424242424241") and not luhn_valid("12ab") and not luhn_valid("")
