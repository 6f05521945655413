"""A fake Key Vault behind the real `SecretClient`, through an injected azure-core transport.

The SDK's own pipeline runs unchanged: the first request goes out without a token and gets the
401 challenge, later ones carry the bearer token. The fake records every request so tests can
count reads, can add secret versions (rotation), delete secrets and go down (outage).
"""

from __future__ import annotations

import io
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.core.pipeline.transport import RequestsTransport
from requests.adapters import BaseAdapter, HTTPAdapter

from shared.credentials import KeyVaultSecrets

_vault_counter = iter(range(1, 1_000_000))


class FakeCredential:
    """Stands in for DefaultAzureCredential: hands out a token, never touches the network."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("fake-access-token", int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        return AccessTokenInfo("fake-access-token", int(time.time()) + 3600)


@dataclass
class SecretVersion:
    value: str
    version: str
    content_type: str | None
    tags: dict[str, str] = field(default_factory=dict)
    enabled: bool = True


@dataclass
class SeenRequest:
    method: str
    path: str
    authorized: bool
    body: dict[str, Any] | None


class FakeKeyVault(BaseAdapter):
    def __init__(self) -> None:
        super().__init__()
        self.url = f"https://kv-fake{next(_vault_counter)}.vault.azure.net"
        self.secrets: dict[str, list[SecretVersion]] = {}
        self.requests: list[SeenRequest] = []
        self.down = False
        self._lock = threading.Lock()

    def set(self, name: str, value: str, content_type: str | None = "application/json") -> str:
        version = uuid.uuid4().hex
        with self._lock:
            self.secrets.setdefault(name, []).append(SecretVersion(value, version, content_type))
        return version

    def delete(self, name: str) -> None:
        with self._lock:
            self.secrets.pop(name, None)

    def reads(self, name: str | None = None) -> int:
        """Authorised GETs of secret values (the 401 challenge round-trip is not a read)."""
        return sum(
            1
            for r in self.requests
            if r.method == "GET" and r.authorized and "/secrets/" in r.path
            and (name is None or r.path.split("/")[2] == name)
        )

    def client(self, **options: Any) -> KeyVaultSecrets:
        session = requests.Session()
        session.mount("https://", self)
        transport = RequestsTransport(session=session, session_owner=False)
        options.setdefault("retry_total", 0)
        return KeyVaultSecrets.connect(self.url, FakeCredential(), transport=transport, **options)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        path = urlsplit(request.url or "").path.rstrip("/")
        authorized = bool(request.headers.get("Authorization"))
        body = json.loads(request.body) if request.body else None
        with self._lock:
            self.requests.append(SeenRequest(request.method or "", path, authorized, body))
        if self.down:
            raise requests.exceptions.ConnectionError("fake Key Vault is down")
        if not authorized:
            challenge = (
                'Bearer authorization="https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000", '
                'resource="https://vault.azure.net"'
            )
            return self._respond(request, 401, {"error": {"code": "Unauthorized"}}, {"WWW-Authenticate": challenge})
        parts = path.split("/")
        if len(parts) >= 3 and parts[1] == "secrets":
            name = parts[2]
            if request.method == "PUT":
                assert body is not None
                self.set(name, body["value"], body.get("contentType"))
                if body.get("tags"):
                    self.secrets[name][-1].tags = body["tags"]
                return self._respond(request, 200, self._bundle(name, self.secrets[name][-1]))
            versions = self.secrets.get(name)
            if not versions:
                missing = {"code": "SecretNotFound", "message": f"A secret with (name/id) {name} was not found"}
                return self._respond(request, 404, {"error": missing})
            wanted = parts[3] if len(parts) > 3 else None
            chosen = next((v for v in versions if v.version == wanted), None) if wanted else versions[-1]
            if chosen is None:
                return self._respond(request, 404, {"error": {"code": "SecretNotFound"}})
            return self._respond(request, 200, self._bundle(name, chosen))
        if path == "/secrets" and request.method == "GET":
            items = [
                {"id": f"{self.url}/secrets/{name}", "attributes": {"enabled": True}, "contentType": v[-1].content_type,
                 "tags": v[-1].tags}
                for name, v in sorted(self.secrets.items())
            ]
            return self._respond(request, 200, {"value": items, "nextLink": None})
        return self._respond(request, 404, {"error": {"code": "NotFound"}})

    def _bundle(self, name: str, version: SecretVersion) -> dict[str, Any]:
        now = int(time.time())
        return {
            "value": version.value,
            "id": f"{self.url}/secrets/{name}/{version.version}",
            "contentType": version.content_type,
            "tags": version.tags,
            "attributes": {"enabled": version.enabled, "created": now, "updated": now, "recoveryLevel": "Recoverable"},
        }

    @staticmethod
    def _respond(
        request: requests.PreparedRequest, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> requests.Response:
        data = json.dumps(payload).encode()
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(data),
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Content-Length": str(len(data)),
                **(headers or {}),
            },
            status=status,
            preload_content=False,
            decode_content=False,
        )
        return HTTPAdapter().build_response(request, raw)

    def close(self) -> None:
        pass
