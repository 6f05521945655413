"""A forwarding HTTP proxy for tests: it records each request it relays (with the absolute URL the
client asked for in `RecordedRequest.target`) and passes it on to that URL.

    with ForwardingProxy() as proxy:
        os.environ["HTTP_PROXY"] = proxy.root_url
        ...
        proxy.requests            # what went through the proxy
"""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

from tests.fakes._server import FakeServer, RecordedRequest, Reply

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authorization", "proxy-connection", "te", "upgrade"})


class ForwardingProxy(FakeServer):
    def handle(self, request: RecordedRequest) -> Reply:
        target = urlsplit(request.target)
        if target.scheme != "http" or not target.hostname:
            return Reply(400, {"error": "this proxy relays absolute http:// URLs only"})
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        path = target.path + (f"?{target.query}" if target.query else "")
        connection = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=10)
        try:
            connection.request(request.method, path, body=request.raw_body.encode() or None, headers=headers)
            answer = connection.getresponse()
            body = answer.read()
        finally:
            connection.close()
        passed = {k: v for k, v in answer.getheaders() if k.lower() not in HOP_BY_HOP | {"content-length"}}
        return Reply(answer.status, headers=passed, raw=body)
