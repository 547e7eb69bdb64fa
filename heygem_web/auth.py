"""Login for the UI and the REST API from `HEYGEM_AUTH=user:password[,user2:password2]` (a
password may be given hashed, see `passwords`).

One check for every request, page or API: HTTP Basic (the browser asks once and sends it with
every request, video and download links included) or a bearer token from `POST /api/token` (see
`tokens`: signed with a server secret, expiring, revocable). The user it names is put on the
request (`request.state.user`); with auth off there is none. A client that keeps failing is slowed
down, and every failure is logged."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qs

from heygem_core.config import Settings
from heygem_web.passwords import verify_password
from heygem_web.tokens import STATE_FILE, TokenKeeper

logger = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/healthz"})  # for load balancers and monitors
DEFAULT_TOKEN_TTL_S = 12 * 3600.0  # bearer tokens of an Authenticator made without settings
REMEMBER_S = 300.0  # a verified Basic credential is not checked again for this long
MAX_REMEMBERED = 1024  # verified credentials remembered at once (then all are forgotten)
FREE_FAILURES = 5  # failed logins a client may make before it is slowed down
BASE_WAIT_S = 1.0  # the wait after the first failure past those; it doubles with each
MAX_WAIT_S = 300.0  # the longest wait
FORGET_S = 900.0  # a client's failures are forgotten this long after its last one
MAX_CLIENTS = 10_000  # clients whose failures are remembered at once
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
    """Checks credentials against the configured users (passwords plain or hashed); issues and
    checks bearer tokens; slows down clients that keep failing."""

    def __init__(self, users: Mapping[str, str], tokens: TokenKeeper | None = None,
                 throttle: LoginThrottle | None = None) -> None:
        self.users = dict(users)
        self.tokens = tokens or TokenKeeper(None, DEFAULT_TOKEN_TTL_S)
        self.throttle = throttle or LoginThrottle()
        self._verified: dict[bytes, tuple[float, str]] = {}  # digest of a Basic value -> (until, user)

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        users = parse_auth(settings.auth)
        tokens = TokenKeeper(settings.workspace / STATE_FILE if users else None, settings.token_ttl_s,
                             settings.auth_secret)
        return cls(users, tokens)

    @property
    def enabled(self) -> bool:
        return bool(self.users)

    def token_for(self, user: str) -> str:
        """A bearer token for `user`: signed with the server's secret, valid for the token TTL,
        until the user revokes their tokens or their password changes."""
        return self.tokens.issue(user, self.users[user])

    def revoke(self, user: str) -> None:
        """End every bearer token of `user`."""
        self.tokens.revoke(user)

    def user_for(self, authorization: str, token: str = "") -> str | None:
        """The user an Authorization header (Basic or Bearer) or a `token` names, if valid."""
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "basic":
            return self._basic(value.strip())
        if scheme.lower() == "bearer":
            token = value.strip()
        return self.tokens.check(token, self.users) if token else None

    def user_of(self, scope: Scope) -> str | None:
        """The user an ASGI request names (Authorization header or `?token=`), if valid."""
        authorization = next((v.decode("latin-1") for k, v in scope.get("headers", [])
                              if k.lower() == b"authorization"), "")
        return self.user_for(authorization, _query_token(scope))

    def _basic(self, value: str) -> str | None:
        """The user of a Basic value; a verified value is remembered (by its digest) for a while,
        so that a hashed password costs its PBKDF2 once, not on every poll."""
        key = hashlib.sha256(value.encode()).digest()
        now = time.monotonic()
        until, user = self._verified.get(key, (0.0, ""))
        if now < until and user in self.users:
            return user
        try:
            user, _, password = base64.b64decode(value).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        expected = self.users.get(user)
        if expected is None or not verify_password(expected, password):
            return None
        if len(self._verified) >= MAX_REMEMBERED:
            self._verified.clear()
        self._verified[key] = (now + REMEMBER_S, user)
        return user


class LoginThrottle:
    """Failed logins per client: the first FREE_FAILURES pass, then each further attempt must
    wait twice as long as the one before (up to MAX_WAIT_S) or is refused with 429."""

    def __init__(self) -> None:
        self._failures: dict[str, tuple[int, float]] = {}  # client -> (failures, last at)

    def wait_s(self, client: str) -> float:
        """Seconds this client must still wait before its next attempt counts (0: go ahead)."""
        count, last = self._failures.get(client, (0, 0.0))
        if count < FREE_FAILURES:
            return 0.0
        delay = min(MAX_WAIT_S, BASE_WAIT_S * 2 ** (count - FREE_FAILURES))
        return max(0.0, last + delay - time.monotonic())

    def failed(self, client: str, path: str) -> None:
        count, last = self._failures.get(client, (0, 0.0))
        if time.monotonic() - last > FORGET_S:
            count = 0
        self._failures[client] = (count + 1, time.monotonic())
        logger.warning("failed login from %s on %s (%d in a row)%s", client, path, count + 1,
                       "; its next attempts must wait" if count + 1 >= FREE_FAILURES else "")
        if len(self._failures) > MAX_CLIENTS:
            self._failures.pop(next(iter(self._failures)))

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)


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
        client = (scope.get("client") or ("?", 0))[0]
        wait = self.auth.throttle.wait_s(client)
        if wait > 0:
            await _too_many(scope, send, wait)
            return
        user = self.auth.user_of(scope)
        if user is None:
            if _sent_credentials(scope):
                self.auth.throttle.failed(client, scope.get("path", ""))
            await _refuse(scope, send)
            return
        self.auth.throttle.succeeded(client)
        scope.setdefault("state", {})["user"] = user
        await self.app(scope, receive, send)


def _query_token(scope: Scope) -> str:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [])
    return values[0] if values else ""


def _sent_credentials(scope: Scope) -> bool:
    """Whether the request tried to log in (a request without credentials is only asked to)."""
    return bool(_query_token(scope)) or any(k.lower() == b"authorization" for k, _ in scope.get("headers", []))


async def _too_many(scope: Scope, send: Send, wait_s: float) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 4429})
        return
    body = json.dumps({"error_code": "too_many_attempts",
                       "message": f"登录失败次数过多,请 {math.ceil(wait_s)} 秒后再试 / Too many failed logins: "
                                  f"try again in {math.ceil(wait_s)} s"}, ensure_ascii=False).encode()
    await send({"type": "http.response.start", "status": 429,
                "headers": [(b"content-type", b"application/json"), (b"retry-after", str(math.ceil(wait_s)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _refuse(scope: Scope, send: Send) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 4401})
        return
    body = b'{"error_code": "unauthorized", "message": "\\u9700\\u8981\\u767b\\u5f55 / Login required"}'
    await send({"type": "http.response.start", "status": 401,
                "headers": [(b"content-type", b"application/json"), (b"www-authenticate", REALM.encode())]})
    await send({"type": "http.response.body", "body": body})
