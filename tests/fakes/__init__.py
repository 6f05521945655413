"""Stateful fake gateway servers for tests: `CardConnectFake` and `PayloadFake` (see their modules)."""

from tests.fakes._server import RecordedRequest, unused_local_url
from tests.fakes.cardconnect import CardConnectFake, CardConnectTxn
from tests.fakes.payload import PayloadFake, PayloadTxn

__all__ = ["CardConnectFake", "CardConnectTxn", "PayloadFake", "PayloadTxn", "RecordedRequest", "unused_local_url"]
