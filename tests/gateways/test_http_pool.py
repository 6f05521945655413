"""HttpPool: https only, one session per base URL, no retries, and failures classified by whether
the request can have reached the gateway."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator, Mapping
from decimal import Decimal

import pytest
import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from gateways.cards import luhn_valid
from gateways.errors import (
    CredentialsRejected,
    GatewayError,
    GatewayMisconfigured,
    GatewayUnreachable,
    OutcomeUnknown,
    RequestRejected,
    TransactionNotFound,
)
from gateways.http import (
    FILTERED,
    NO_STATUSES,
    GatewayCall,
    HttpPool,
    HttpReply,
    InsecureUrlError,
    StatusError,
    Timeouts,
    _classify,
    base_url_key,
    gateway_url,
    scrub_transcript,
)
from tests.fakes import CardConnectFake, ForwardingProxy, unused_local_url
from tests.fakes._server import FakeServer, RecordedRequest, Reply
from tests.gateways.helpers import CC_MERCHANTS, CC_MID, TIMEOUTS, cardconnect, sale


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


def test_one_pool_per_base_url_bounded_and_without_any_kept_state(cc_fake: CardConnectFake) -> None:
    pool = HttpPool(TIMEOUTS, max_routes=2)
    auth = CC_MERCHANTS[CC_MID]
    for host in ("127.0.0.1", "127.0.0.1", "localhost"):
        pool.send("GET", f"http://{host}:{cc_fake.port}/cardconnect/rest/inquireMerchant/{CC_MID}", auth=auth)
    adapters = pool.adapters()
    assert len(adapters) == 2
    for adapter in adapters:
        assert adapter.max_retries.total == 0 and adapter._pool_maxsize >= 32  # type: ignore[attr-defined]
    # Pooling without a requests.Session: nothing a session could carry from one request to the next.
    assert not any(isinstance(value, requests.Session) for value in vars(pool).values())
    pool.close()
    assert pool.adapters() == []


def test_form_bodies_and_headers_travel_with_their_own_request_only(cc_fake: CardConnectFake) -> None:
    pool = HttpPool(TIMEOUTS)
    url = f"{cc_fake.root_url}/cardconnect/rest/inquireMerchant/{CC_MID}"
    form = {"Authorization": "Bearer key-one", "Content-Type": "application/x-www-form-urlencoded"}
    cc_fake.set_fault("http400")  # CardConnect serves no form POST; what it received is the point
    pool.send("POST", url, auth=None, data="b=2&a%5Bx%5D=1+%26+2", headers={**form, "Idempotency-Key": "k1"})
    pool.send("GET", url, auth=CC_MERCHANTS[CC_MID])
    first, second = cc_fake.requests
    assert first.raw_body == "b=2&a%5Bx%5D=1+%26+2"
    assert first.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert (first.bearer, first.headers["Idempotency-Key"]) == ("key-one", "k1")
    assert "Idempotency-Key" not in second.headers and second.bearer is None
    pool.close()


@pytest.mark.parametrize(
    ("segments", "path"),
    [
        (("inquire", "123456789012", "800000000001"), "/inquire/123456789012/800000000001"),
        (("transactions", "a/b?c#d"), "/transactions/a%2Fb%3Fc%23d"),
        (("transactions", "%2e%2e"), "/transactions/%252e%252e"),
    ],
)
def test_gateway_url_encodes_each_segment_whole(segments: tuple[str, ...], path: str) -> None:
    assert gateway_url("https://gw.example/rest/", *segments) == "https://gw.example/rest" + path


@pytest.mark.parametrize("segment", [".", "..", "...", ""])
def test_gateway_url_refuses_dot_and_empty_segments(segment: str) -> None:
    with pytest.raises(RequestRejected):
        gateway_url("https://gw.example/rest", "transactions", segment)


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
    cc_fake.set_fault(mode)
    with pytest.raises(OutcomeUnknown):
        HttpPool(TIMEOUTS).send("GET", f"{cc_fake.base_url}/inquireMerchant/{CC_MID}", auth=CC_MERCHANTS[CC_MID])
    assert len(cc_fake.requests) == 1, "never retried"


def test_a_slow_fault_outlasts_the_client_timeout_then_lets_go(cc_fake: CardConnectFake) -> None:
    """The fakes' `slow` holds its answer until the client gives up, however long the client waits,
    and then stops holding it: a test's client timeout alone decides that the answer was lost."""
    cc_fake.set_fault("slow")
    started = time.monotonic()
    with pytest.raises(OutcomeUnknown):
        HttpPool(Timeouts(connect=1.0, read=0.3)).send(
            "GET", f"{cc_fake.base_url}/inquireMerchant/{CC_MID}", auth=CC_MERCHANTS[CC_MID]
        )
    (held,) = cc_fake.requests
    while held.status is None and time.monotonic() - started < 10:
        time.sleep(0.02)
    assert held.status == 200, "the fake kept holding an answer nobody waits for"
    assert time.monotonic() - started < 10, "its 30 s cap, not the client leaving, released it"


def test_transcript_hook_sees_the_real_exchange(cc_fake: CardConnectFake) -> None:
    seen: list[str] = []
    pool = HttpPool(TIMEOUTS, transcript=seen.append)
    pool.send("PUT", f"{cc_fake.base_url}/auth", auth=CC_MERCHANTS[CC_MID], json={"merchid": CC_MID, "amount": "1.00"})
    [text] = seen
    assert text.startswith(f"PUT {cc_fake.base_url}/auth\n")
    assert "Authorization: Basic " in text and '"merchid": "800000000001"' in text and "HTTP 200" in text


def test_the_observer_is_told_each_request_by_its_labels_never_its_path(cc_fake: CardConnectFake) -> None:
    seen: list[GatewayCall] = []
    pool = HttpPool(TIMEOUTS, observer=seen.append)
    url = f"{cc_fake.base_url}/inquireMerchant/{CC_MID}"
    pool.send("GET", url, auth=CC_MERCHANTS[CC_MID], gateway="CardConnect", endpoint="inquireMerchant")
    cc_fake.set_fault("http500")
    with pytest.raises(OutcomeUnknown):
        pool.send("GET", url, auth=CC_MERCHANTS[CC_MID], gateway="CardConnect", endpoint="inquireMerchant")
    with pytest.raises(GatewayUnreachable):
        pool.send("POST", unused_local_url() + "/auth", auth=("u", "p"), json={}, gateway="CardConnect",
                  endpoint="auth")
    answered, failed, refused = seen
    assert (answered.gateway, answered.endpoint, answered.method, answered.host) == (
        "CardConnect", "inquireMerchant", "GET", "127.0.0.1",
    )
    assert (answered.status, answered.outcome) == (200, "answered")
    assert (failed.status, failed.outcome) == (500, "unknown")
    assert (refused.status, refused.outcome, refused.method) == (None, "unreachable", "POST")
    assert all(call.duration_s >= 0 and call.started_ns > 0 for call in seen)
    assert not any(CC_MID in repr(call) for call in seen)


def test_a_failing_observer_never_changes_the_answer(
    cc_fake: CardConnectFake, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(call: GatewayCall) -> None:
        raise RuntimeError("exporter down")

    pool = HttpPool(TIMEOUTS, observer=broken)
    reply = pool.send("GET", f"{cc_fake.base_url}/inquireMerchant/{CC_MID}", auth=CC_MERCHANTS[CC_MID])
    assert reply.status == 200
    assert "the HTTP observer failed: RuntimeError" in caplog.text


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


@pytest.fixture
def egress_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ForwardingProxy]:
    """A proxy in HTTP_PROXY and HTTPS_PROXY with 127.0.0.1 in NO_PROXY, as on AKS behind an
    egress proxy; `localhost` is not in NO_PROXY, so it goes through the proxy."""
    with ForwardingProxy() as proxy:
        for name in ("http_proxy", "https_proxy", "no_proxy", "all_proxy", "ALL_PROXY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.root_url)
        monkeypatch.setenv("HTTPS_PROXY", proxy.root_url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,.internal.example")
        yield proxy


def test_no_proxy_hosts_are_reached_directly_and_others_through_the_proxy(
    cc_fake: CardConnectFake, egress_proxy: ForwardingProxy
) -> None:
    pool = HttpPool(TIMEOUTS)
    direct = cardconnect(cc_fake, pool, base_url=f"http://127.0.0.1:{cc_fake.port}/cardconnect/rest")
    proxied = cardconnect(cc_fake, pool, base_url=f"http://localhost:{cc_fake.port}/cardconnect/rest")
    direct.charge(sale(order_id="ord-direct"))
    proxied.charge(sale(order_id="ord-proxied"))
    direct.charge(sale(order_id="ord-direct-2"))
    pool.close()

    assert [(r.method, r.target) for r in egress_proxy.requests] == [
        ("PUT", f"http://localhost:{cc_fake.port}/cardconnect/rest/auth")
    ]
    assert egress_proxy.requests[0].body["orderid"] == "ord-proxied"
    assert {c.orderid for c in cc_fake.live_charges()} == {"ord-direct", "ord-proxied", "ord-direct-2"}
    direct_sales = [r for r in cc_fake.requests if r.body["orderid"].startswith("ord-direct")]
    assert [r.target for r in direct_sales] == ["/cardconnect/rest/auth"] * 2


def test_proxies_are_resolved_once_per_gateway_url(
    cc_fake: CardConnectFake, egress_proxy: ForwardingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = requests.utils.get_environ_proxies

    def counting(url: str, no_proxy: str | None = None) -> dict[str, str]:
        calls.append(url)
        return real(url, no_proxy)

    monkeypatch.setattr(requests.utils, "get_environ_proxies", counting)
    pool = HttpPool(TIMEOUTS)
    for n in range(5):
        cardconnect(cc_fake, pool).charge(sale(order_id=f"ord-once-{n}"))
    pool.close()
    assert calls == [f"http://127.0.0.1:{cc_fake.port}"]


class StatusServer(FakeServer):
    """Answers `/status/N` with HTTP N and a JSON error body, recording each request."""

    def handle(self, request: RecordedRequest) -> Reply:
        status = int(request.path.rsplit("/", 1)[1])
        return Reply(status, {"error": f"status {status}"})


@pytest.fixture
def statuses() -> Iterator[StatusServer]:
    with StatusServer() as server:
        yield server


def answer(
    server: StatusServer, status: int, url_setting: str = "", statuses: Mapping[int, StatusError] = NO_STATUSES
) -> HttpReply:
    pool = HttpPool(TIMEOUTS)
    try:
        return pool.send(
            "PUT", f"{server.base_url}/status/{status}", auth=("u", "p"), json={}, gateway="Gw",
            url_setting=url_setting, statuses=statuses,
        )
    finally:
        pool.close()


@pytest.mark.parametrize("status", [401, 403])
def test_401_and_403_are_rejected_credentials(statuses: StatusServer, status: int) -> None:
    with pytest.raises(CredentialsRejected) as rejected:
        answer(statuses, status)
    assert (rejected.value.http_status, rejected.value.code) == (status, str(status))
    assert "Gw did not accept the merchant's credentials" in rejected.value.message
    assert len(statuses.requests) == 1, "never retried"


def test_429_is_refused_before_acting_so_unreachable_and_rate_limited(statuses: StatusServer) -> None:
    with pytest.raises(GatewayUnreachable) as limited:
        answer(statuses, 429)
    assert (limited.value.http_status, limited.value.code) == (429, "rate_limited")
    assert "nothing was done" in limited.value.message
    assert len(statuses.requests) == 1, "never retried"


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
def test_408_and_5xx_are_unknown_outcomes(statuses: StatusServer, status: int) -> None:
    with pytest.raises(OutcomeUnknown) as unknown:
        answer(statuses, status)
    assert (unknown.value.http_status, unknown.value.code) == (status, str(status))
    assert len(statuses.requests) == 1, "never retried"


@pytest.mark.parametrize("status", [405, 406, 407, 410, 415])
def test_configuration_statuses_are_our_misconfiguration(statuses: StatusServer, status: int) -> None:
    with pytest.raises(GatewayMisconfigured) as misconfigured:
        answer(statuses, status)
    assert (misconfigured.value.http_status, misconfigured.value.code) == (status, str(status))


def test_404_on_a_collection_names_the_url_setting(statuses: StatusServer) -> None:
    with pytest.raises(GatewayMisconfigured, match="Gw has no such endpoint: check GW_URL; nothing was done") as gone:
        answer(statuses, 404, url_setting="GW_URL")
    assert (gone.value.http_status, gone.value.code) == (404, "404")


def test_a_gateways_statuses_take_precedence_over_the_defaults(statuses: StatusServer) -> None:
    def not_found(reply: HttpReply) -> GatewayError:
        return TransactionNotFound(f"no such object ({reply.json['error']})", code="nf", http_status=reply.status)

    for status in (403, 404):
        with pytest.raises(TransactionNotFound, match=f"no such object \\(status {status}\\)"):
            answer(statuses, status, statuses={403: not_found, 404: not_found})
    # Statuses it does not name keep their default meaning.
    with pytest.raises(CredentialsRejected):
        answer(statuses, 401, statuses={404: not_found})


@pytest.mark.parametrize("status", [200, 400, 409, 422])
def test_other_answers_go_back_to_the_gateway_to_read(statuses: StatusServer, status: int) -> None:
    reply = answer(statuses, status)
    assert (reply.status, reply.json) == (status, {"error": f"status {status}"})


def test_the_observer_sees_a_mapped_status_as_an_answer(statuses: StatusServer) -> None:
    seen: list[GatewayCall] = []
    pool = HttpPool(TIMEOUTS, observer=seen.append)
    with pytest.raises(GatewayUnreachable):
        pool.send("GET", f"{statuses.base_url}/status/429", auth=("u", "p"), gateway="Gw", endpoint="status")
    [call] = seen
    assert (call.status, call.outcome) == (429, "answered")


class BomServer(FakeServer):
    """Answers every request with a JSON body that starts with a UTF-8 byte-order mark."""

    def handle(self, request: RecordedRequest) -> Reply:
        return Reply(200, raw='\ufeff{"answer": "yes", "amount": 1.10}'.encode())


def test_a_json_body_after_a_byte_order_mark_is_read_and_no_auth_means_no_header() -> None:
    with BomServer() as server:
        pool = HttpPool(TIMEOUTS)
        try:
            reply = pool.send("POST", server.base_url, auth=None, json={"q": 1}, gateway="Gw")
        finally:
            pool.close()
        assert reply.json == {"answer": "yes", "amount": Decimal("1.10")}
        assert server.requests[0].authorization is None


class TextServer(FakeServer):
    """Answers every request with a name-value text body (not JSON), as Payflow does."""

    def handle(self, request: RecordedRequest) -> Reply:
        return Reply(200, raw=b"RESULT=0&RESPMSG=Approved")


def test_a_text_wire_sends_its_body_and_headers_as_given_and_reads_the_answer_as_text() -> None:
    pool = HttpPool(TIMEOUTS)
    with TextServer() as server:
        reply = pool.send(
            "POST", server.base_url + "/", auth=None, data="TRXTYPE=S&PWD[3]=a&b",
            headers={"Content-Type": "text/namevalue", "X-VPS-REQUEST-ID": "X1"}, json_reply=False,
        )
        with pytest.raises(OutcomeUnknown, match="without a JSON body"):
            pool.send("POST", server.base_url + "/", auth=None, data="x", headers={"Content-Type": "text/plain"})
    pool.close()
    assert (reply.status, reply.json, reply.text) == (200, None, "RESULT=0&RESPMSG=Approved")
    sent = server.requests[0]
    assert sent.raw_body == "TRXTYPE=S&PWD[3]=a&b"
    assert (sent.headers["Content-Type"], sent.headers["X-VPS-REQUEST-ID"]) == ("text/namevalue", "X1")
    assert "Authorization" not in sent.headers
