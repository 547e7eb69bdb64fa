"""Login for the UI and the REST API from `HEYGEM_AUTH=user:password[,user2:password2]`.

One check for every request, page or API: HTTP Basic (the browser asks once and sends it with
every request, video and download links included) or a bearer token from `POST /api/token`.
The user it names is put on the request (`request.state.user`); with auth off there is none."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qs

logger = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/healthz"})  # for load balancers and monitors
REALM = 'Basic realm="HeyGem", charset="UTF-8"'

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def parse_auth(value: str) -> dict[str, str]:
    """`alice:pw1,bob:pw2` -> {"alice": "pw1", "bob": "pw2"}; empty or unset -> {} (auth off)."""
    users: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        user, sep, password = part.partition(":")
        if not sep or not user or not password:
            raise ValueError(f"HEYGEM_AUTH entries are user:password, got {part!r}")
        users[user] = password
    return users


class Authenticator:
    """Checks credentials against the configured users; issues and checks bearer tokens."""

    def __init__(self, users: Mapping[str, str]) -> None:
        self.users = dict(users)
        material = "\n".join(f"{u}:{p}" for u, p in sorted(self.users.items()))
        self._key = hashlib.sha256(("heygem-token\n" + material).encode()).digest()

    @property
    def enabled(self) -> bool:
        return bool(self.users)

    def token_for(self, user: str) -> str:
        """A bearer token for `user` (valid while the user's password stays the same)."""
        return f"{user}.{hmac.new(self._key, user.encode(), hashlib.sha256).hexdigest()}"

    def user_for(self, authorization: str, token: str = "") -> str | None:
        """The user an Authorization header (Basic or Bearer) or a `token` names, if valid."""
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "basic":
            return self._basic(value.strip())
        if scheme.lower() == "bearer":
            token = value.strip()
        return self._bearer(token) if token else None

    def user_of(self, scope: Scope) -> str | None:
        """The user an ASGI request names (Authorization header or `?token=`), if valid."""
        authorization = next((v.decode("latin-1") for k, v in scope.get("headers", [])
                              if k.lower() == b"authorization"), "")
        return self.user_for(authorization, _query_token(scope))

    def _basic(self, value: str) -> str | None:
        try:
            user, _, password = base64.b64decode(value).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        expected = self.users.get(user)
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            return None
        return user

    def _bearer(self, token: str) -> str | None:
        user = token.rpartition(".")[0]
        if user in self.users and hmac.compare_digest(self.token_for(user), token):
            return user
        return None


class AuthMiddleware:
    """ASGI middleware: every HTTP request and WebSocket must name a user when auth is on."""

    def __init__(self, app: App, authenticator: Authenticator) -> None:
        self.app = app
        self.auth = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self.auth.enabled:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "http" and scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        user = self.auth.user_of(scope)
        if user is None:
            await _refuse(scope, send)
            return
        scope.setdefault("state", {})["user"] = user
        await self.app(scope, receive, send)


def _query_token(scope: Scope) -> str:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [])
    return values[0] if values else ""


async def _refuse(scope: Scope, send: Send) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 4401})
        return
    body = b'{"error_code": "unauthorized", "message": "\\u9700\\u8981\\u767b\\u5f55 / Login required"}'
    await send({"type": "http.response.start", "status": 401,
                "headers": [(b"content-type", b"application/json"), (b"www-authenticate", REALM.encode())]})
    await send({"type": "http.response.body", "body": body})
