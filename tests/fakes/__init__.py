"""Stateful fake gateway servers for tests: `CardConnectFake` and `PayloadFake`, built on the fake kit
(`kit.py`: a ledger of payments and refunds, faults, the conformance `Profile` each fake module
exports), and a `ForwardingProxy` (see their modules)."""

from tests.fakes._server import RecordedRequest, unused_local_url
from tests.fakes.cardconnect import CardConnectFake, CardConnectTxn
from tests.fakes.payload import PayloadFake
from tests.fakes.proxy import ForwardingProxy

__all__ = [
    "CardConnectFake",
    "CardConnectTxn",
    "ForwardingProxy",
    "PayloadFake",
    "RecordedRequest",
    "unused_local_url",
]
