"""The polling fast path: `GET /api/progress` and `GET /api/progress/{batch_id}` answered from
the service's cached JSON with as little Python as possible.

Hundreds of clients poll these routes once a second while a batch renders on the same machine,
so every microsecond of CPU they cost is taken from the render. Two layers:

- `ProgressFastPath`, the outermost ASGI app: answers before FastAPI, Starlette, routing and
  dependency injection see the request (about 0.12 → 0.05 ms of server CPU per request, one at
  a time on a warm server).
- `polling_protocol`, uvicorn's httptools protocol answering the same requests before uvicorn
  makes an ASGI task for them, in one write. With requests spread out in time, as real pollers
  send them, the interpreter runs cold and each request's Python costs several times more:
  there bare uvicorn costs about 0.25 ms a request and this protocol a fraction of it.

Both give only a successful answer; anything else (no login, an unknown batch, the store down)
goes on to the app, whose middleware and routes answer it the usual way."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from heygem_core.api import PROGRESS_PATH, idle_json, output_url
from heygem_core.auth import Authenticator
from heygem_core.jobs.runtime import Runtime

logger = logging.getLogger(__name__)

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
        owner = self.auth.user_of(scope) if self.auth.enabled else None
        if self.auth.enabled and owner is None:
            return None
        try:
            body = runtime.service.live_snapshot_json(batch_id or None, owner, output_url)
        except Exception:  # noqa: BLE001 - the route gives the error its proper answer
            return None
        if body is None:
            return idle_json() if batch_id == "" else None
        return body


def polled_batch(path: str) -> str | None:
    """"" for /api/progress (the current batch), the id for /api/progress/{id}, else None."""
    if path == PROGRESS_PATH:
        return ""
    rest = path[len(PROGRESS_PATH) + 1:] if path.startswith(PROGRESS_PATH + "/") else ""
    return rest if rest and "/" not in rest else None


def polling_protocol(fast: ProgressFastPath) -> Any:
    """uvicorn's `http` setting: its httptools protocol, answering polling requests through
    `fast` itself; "auto" (uvicorn's own choice) where httptools is not installed."""
    try:
        import httptools
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        logger.info("httptools is not installed: the polling routes are answered through ASGI")
        return "auto"

    class PollingProtocol(HttpToolsProtocol):
        """Answers a keep-alive HTTP/1.1 GET of a polling route in `on_headers_complete`,
        unless an earlier request on the connection is still being answered."""

        answered = False  # whether the request being parsed was answered here

        def on_headers_complete(self) -> None:
            body = self._answer()
            self.answered = body is not None
            if body is None:
                super().on_headers_complete()
                return
            self.server_state.total_requests += 1
            self.transport.write(_response(body, self.server_state.default_headers))
            self._unset_keepalive_if_required()
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler)

        def _answer(self) -> bytes | None:
            parser = self.parser
            if (parser.get_method() != b"GET" or parser.get_http_version() != "1.1"
                    or not parser.should_keep_alive() or parser.should_upgrade() or self.root_path
                    or self.pipeline or (self.cycle is not None and not self.cycle.response_complete)):
                return None
            url = httptools.parse_url(self.url)
            if b"%" in url.path:
                return None
            return fast.answer({"path": url.path.decode("ascii"), "headers": self.headers,
                                "query_string": url.query or b""})

        def on_body(self, body: bytes) -> None:
            if not self.answered:
                super().on_body(body)

        def on_message_complete(self) -> None:
            if not self.answered:
                super().on_message_complete()

    return PollingProtocol


def _response(body: bytes, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """A whole 200 response: status line, uvicorn's default headers (server, date), JSON body."""
    head = [b"HTTP/1.1 200 OK\r\n"]
    for name, value in [*default_headers, *JSON_HEADERS, (b"content-length", str(len(body)).encode())]:
        head += [name, b": ", value, b"\r\n"]
    return b"".join([*head, b"\r\n", body])
