"""Upload limits applied while the body arrives, before any of it is spooled: a multipart request
whose Content-Length is over the request limit is refused at once, and one without a length (or
lying about it) as soon as its bytes pass the limit, a file part passes the per-file limit, or it
has more parts than a batch can use. The refusal is the API's JSON error, 413 or 400."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from heygem_core.errors import ErrorCode, HeyGemError

logger = logging.getLogger(__name__)

PART_HEADERS_BYTES = 16 * 1024  # a part's own headers, counted against the per-file limit

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class Refused(Exception):
    """The request broke a limit: answered with `error` and `status`."""

    def __init__(self, error: HeyGemError, status: int) -> None:
        super().__init__(error.message)
        self.error, self.status = error, status


class PartCounter:
    """Counts the parts of a multipart body and the bytes of each, fed chunk by chunk; the
    delimiter may be split across chunks."""

    def __init__(self, boundary: bytes, part_limit: int, max_parts: int) -> None:
        self.delimiter = b"\r\n--" + boundary
        self.part_limit, self.max_parts = part_limit, max_parts
        self.parts = 0  # delimiters seen
        self.part_bytes = 0  # bytes of the part being received, so far
        self._tail = b"\r\n"  # the body starts with "--boundary": as if a line ended before it

    def feed(self, chunk: bytes) -> None:
        data = self._tail + chunk  # nothing of it is counted yet
        pos = 0
        while (found := data.find(self.delimiter, pos)) >= 0:
            self._check(self.part_bytes + found - pos)
            self.parts += 1
            self.part_bytes, pos = 0, found + len(self.delimiter)
            if self.parts - 1 > self.max_parts:  # the first delimiter opens the body, the last closes it
                raise Refused(HeyGemError(ErrorCode.REQUEST_INVALID,
                                          f"more than {self.max_parts} parts in one request"), 400)
        keep = max(pos, len(data) - len(self.delimiter) + 1)  # may begin a delimiter: counted later
        self.part_bytes += keep - pos
        self._tail = data[keep:]
        self._check(self.part_bytes)

    def _check(self, part_bytes: int) -> None:
        if part_bytes > self.part_limit + PART_HEADERS_BYTES:
            raise Refused(HeyGemError(ErrorCode.FILE_TOO_LARGE,
                                      f"a file over {self.part_limit // 1024**2} MB"), 413)


class UploadLimits:
    """ASGI middleware: the limits above on every multipart POST."""

    def __init__(self, app: App, request_limit: int, part_limit: int, max_parts: int) -> None:
        self.app = app
        self.request_limit, self.part_limit, self.max_parts = request_limit, part_limit, max_parts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        boundary = _multipart_boundary(scope) if scope["type"] == "http" and scope["method"] == "POST" else None
        if boundary is None:
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.request_limit:
            await _refuse(send, self._too_large(), 413)
            logger.warning("refused a %d-byte upload to %s from its Content-Length", length, scope["path"])
            return
        await _Guarded(self, boundary).run(scope, receive, send)

    def _too_large(self) -> HeyGemError:
        return HeyGemError(ErrorCode.FILE_TOO_LARGE, f"request over {self.request_limit // 1024**2} MB")


class _Guarded:
    """One request run through the app with its body counted as it is received."""

    def __init__(self, limits: UploadLimits, boundary: bytes) -> None:
        self.limits = limits
        self.counter = PartCounter(boundary, limits.part_limit, limits.max_parts)
        self.received = 0
        self.refused = False
        self.started = False

    async def run(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def guarded_receive() -> Message:
            if self.refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                try:
                    self._count(message.get("body", b""))
                except Refused as refusal:
                    await self._refuse(send, refusal, scope)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if self.refused:
                return  # the app's own answer to a body cut short
            self.started = True
            await send(message)

        await self.limits.app(scope, guarded_receive, guarded_send)

    def _count(self, body: bytes) -> None:
        self.received += len(body)
        if self.received > self.limits.request_limit:
            raise Refused(self.limits._too_large(), 413)
        self.counter.feed(body)

    async def _refuse(self, send: Send, refusal: Refused, scope: Scope) -> None:
        self.refused = True
        logger.warning("refused an upload to %s after %d bytes: %s", scope["path"], self.received,
                       refusal.error.detail)
        if not self.started:
            await _refuse(send, refusal.error, refusal.status)


def _multipart_boundary(scope: Scope) -> bytes | None:
    for name, value in scope.get("headers", []):
        if name == b"content-type" and value.lower().startswith(b"multipart/form-data"):
            for param in value.split(b";")[1:]:
                key, _, boundary = param.strip().partition(b"=")
                if key.lower() == b"boundary" and boundary:
                    return boundary.strip(b'"')
    return None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length" and value.isdigit():
            return int(value)
    return None


async def _refuse(send: Send, error: HeyGemError, status: int) -> None:
    body = json.dumps(error.to_dict(), ensure_ascii=False).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
