"""The polling fast path: `GET /api/progress` and `GET /api/progress/{batch_id}` answered from
the snapshot cache's JSON with as little Python as possible.

Hundreds of clients poll these routes once a second while a batch renders on the same machine,
so every microsecond of CPU they cost is taken from the render. Two layers:

- `ProgressFastPath`, the outermost ASGI app: answers before FastAPI, Starlette, routing and
  dependency injection see the request (about 0.12 → 0.05 ms of server CPU per request, one at
  a time on a warm server).
- `polling_protocol`, the connection-level protocol in front of uvicorn's: a connection that
  only polls is answered without uvicorn's parser callbacks, request objects and ASGI task, in
  one write. Pollers send their requests spread out in time, so the interpreter runs cold and
  every line of Python per request costs several times what it costs in a tight loop: bare
  uvicorn with a trivial ASGI app costs about 0.25 ms of CPU a request that way, a minimal
  asyncio protocol about 0.07.

Both give only a successful answer, and only from memory: the snapshot cache's JSON while it was
checked against the store less than POLL_FRESH_S ago. Anything else (no login, an unknown batch, a
snapshot to look up, the store down) goes on to the app, whose routes look in the store off the
event loop, so a slow or lost store never stalls the server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.auto import AutoHTTPProtocol
from uvicorn.server import ServerState

from heygem_core.jobs.runtime import Runtime
from heygem_core.jobs.snapshot import POLL_FRESH_S
from heygem_web.auth import Authenticator
from heygem_web.urls import PROGRESS_PATH, polled_batch

JSON_HEADERS = [(b"content-type", b"application/json")]


class ProgressFastPath:
    """The outermost ASGI app: polling requests answered from cached JSON, the rest to `app`."""

    def __init__(self, app: FastAPI, authenticator: Authenticator) -> None:
        self.app = app
        self.auth = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = self.answer(scope) if scope["type"] == "http" and scope["method"] == "GET" else None
        if body is None:
            await self.app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    def answer(self, scope: Scope) -> bytes | None:
        """The JSON body for a GET of `scope["path"]` (with its `headers` and `query_string`),
        or None when the app should answer it."""
        batch_id = polled_batch(scope["path"])
        runtime: Runtime | None = getattr(self.app.state, "runtime", None)
        if batch_id is None or runtime is None:
            return None
        owner = None
        if self.auth.enabled:
            owner = self.auth.user_of(scope)
            if owner is None:  # the auth middleware refuses it
                return None
        try:
            return runtime.snapshots.peek_json(batch_id or None, owner)
        except Exception:  # noqa: BLE001 - the route gives the error its proper answer
            return None


def polling_protocol(fast: ProgressFastPath) -> type[asyncio.Protocol]:
    """uvicorn's `http` setting: a protocol in front of uvicorn's own (`AutoHTTPProtocol`, so
    httptools where installed) that answers polling requests through `fast` itself."""

    class Protocol(PollingProtocol):
        answer = staticmethod(fast.answer)
        responses: dict[bytes, tuple[float, bytes]] = {}

    return Protocol


class PollingProtocol(asyncio.Protocol):
    """One HTTP connection. While the client sends nothing but single, complete, keep-alive
    HTTP/1.1 `GET /api/progress[/{id}]` requests that `answer` can answer, each is answered
    here in one write. The first request that is anything else (another route, a partial
    read, pipelined requests, a body, an upgrade, `Connection: close`, HTTP/1.0, percent-encoded
    paths), or that `answer` declines, and everything after it on that connection, goes to
    uvicorn's protocol, which then owns the connection: its parsing, limits and timeouts.

    An answer is kept for `POLL_FRESH_S` under the request's exact bytes (credentials
    included), the time for which the snapshot cache shares one look at the store anyway: most
    polls are then answered by a dictionary lookup and one write."""

    answer: Callable[[dict[str, Any]], bytes | None]  # set by `polling_protocol`
    responses: dict[bytes, tuple[float, bytes]]  # request bytes -> (fresh until, response)

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.inner = AutoHTTPProtocol(config=config, server_state=server_state,  # type: ignore[call-arg]
                                      app_state=app_state, _loop=_loop)
        self.server_state = server_state
        self.keep_alive_s = config.timeout_keep_alive
        self.loop = _loop or asyncio.get_event_loop()
        self.transport: asyncio.Transport | None = None
        self.handed_over = False  # once uvicorn has had a request, it keeps the connection
        self.paused = False
        self.last_active = 0.0
        self.idle_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.last_active = now = self.loop.time()
        if not self.handed_over and not self.paused:
            cached = self.responses.get(data)
            response = cached[1] if cached is not None and now < cached[0] else self._respond(data, now)
            if response is not None:
                self.server_state.total_requests += 1
                self.transport.write(response)
                if self.idle_timer is None:
                    self.idle_timer = self.loop.call_later(self.keep_alive_s, self._close_if_idle)
                return
        self.handed_over = True
        self.inner.data_received(data)

    def _respond(self, data: bytes, now: float) -> bytes | None:
        """The whole response to `data`, kept for the next identical request; None if this
        is not a poll that can be answered here."""
        request = parse_poll(data)
        body = self.answer(request) if request is not None else None
        if body is None:
            return None
        if len(self.responses) >= MAX_KEPT_RESPONSES:
            self.responses.clear()
        response = _response(body, self.server_state.default_headers)
        self.responses[data] = (now + POLL_FRESH_S, response)
        return response

    def _close_if_idle(self) -> None:
        """uvicorn's keep-alive timeout, for the connections answered here (one timer each,
        moved on instead of made again for every request)."""
        self.idle_timer = None
        if self.handed_over or self.transport.is_closing():
            return
        left = self.last_active + self.keep_alive_s - self.loop.time()
        if left <= 0:
            self.transport.close()
        else:
            self.idle_timer = self.loop.call_later(left, self._close_if_idle)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.paused = True
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.paused = False
        self.inner.resume_writing()


MAX_KEPT_RESPONSES = 256  # distinct polling requests kept at once (then all are dropped)
MAX_POLL_BYTES = 4096  # a longer request goes to uvicorn
POLL_PREFIX = b"GET " + PROGRESS_PATH.encode()
REFUSED_HEADERS = (b"content-length", b"transfer-encoding", b"upgrade", b"expect")


def parse_poll(data: bytes) -> dict[str, Any] | None:
    """The path, headers (names lower-cased) and query of `data` when it is exactly one whole
    keep-alive HTTP/1.1 GET of a polling path with no body; None for anything else."""
    if (len(data) > MAX_POLL_BYTES or not data.startswith(POLL_PREFIX) or not data.endswith(b"\r\n\r\n")
            or data.count(b"\r\n\r\n") != 1):
        return None
    request_line, *lines = data[:-4].split(b"\r\n")
    parts = request_line.split(b" ")
    if len(parts) != 3 or parts[2] != b"HTTP/1.1" or b"%" in parts[1]:
        return None
    headers = []
    for line in lines:
        name, sep, value = line.partition(b":")
        name = name.lower()
        if not sep or not name or name != name.strip() or name in REFUSED_HEADERS:
            return None
        value = value.strip()
        if name == b"connection" and (b"close" in value.lower() or b"upgrade" in value.lower()):
            return None
        headers.append((name, value))
    path, _, query = parts[1].partition(b"?")
    try:
        return {"path": path.decode("ascii"), "headers": headers, "query_string": query}
    except UnicodeDecodeError:
        return None


def _response(body: bytes, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """A whole 200 response: status line, uvicorn's default headers (server, date), JSON body."""
    head = [b"HTTP/1.1 200 OK\r\n"]
    for name, value in [*default_headers, *JSON_HEADERS, (b"content-length", str(len(body)).encode())]:
        head += [name, b": ", value, b"\r\n"]
    return b"".join([*head, b"\r\n", body])
