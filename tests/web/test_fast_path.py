"""The polling fast path in front of the app: which requests it answers itself, which it passes
on, and that it answers each user only with their own batches."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from types import SimpleNamespace

import pytest

from heygem_core.errors import ErrorCode, HeyGemError
from heygem_core.jobs.snapshot import idle_json
from heygem_web.auth import Authenticator
from heygem_web.fast_path import ProgressFastPath, parse_poll, polling_protocol

BODY = b'{"batch_id":"b1","status":"processing"}'


class Snapshots:
    """Stands in for the SnapshotCache: records each call and gives `answer`."""

    def __init__(self, answer: bytes | None | Exception = BODY) -> None:
        self.answer = answer
        self.calls: list[tuple[str | None, str | None]] = []

    def peek_json(self, batch_id, owner):
        self.calls.append((batch_id, owner))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


class App:
    """Stands in for the FastAPI app: counts the requests it is given."""

    def __init__(self, service: Snapshots) -> None:
        self.state = SimpleNamespace(runtime=SimpleNamespace(snapshots=service))
        self.seen: list[str] = []

    async def __call__(self, scope, receive, send) -> None:
        self.seen.append(scope["path"])
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b"app"})


def request(front: ProgressFastPath, path: str, method: str = "GET",
            headers: list[tuple[bytes, bytes]] | None = None, query: bytes = b"") -> tuple[int, bytes]:
    """One HTTP request through `front`: (status, body)."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": headers or [],
             "query_string": query}
    asyncio.run(front(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def basic(user: str, password: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", b"Basic " + base64.b64encode(f"{user}:{password}".encode()))]


def test_polling_routes_are_answered_without_the_app():
    service = Snapshots()
    app = App(service)
    front = ProgressFastPath(app, Authenticator({}))
    assert request(front, "/api/progress/b1") == (200, BODY)
    assert request(front, "/api/progress") == (200, BODY)
    assert service.calls == [("b1", None), (None, None)] and app.seen == []


def test_no_current_batch_is_the_idle_snapshot():
    front = ProgressFastPath(App(Snapshots(idle_json())), Authenticator({}))
    status, body = request(front, "/api/progress")
    assert status == 200 and json.loads(body)["batch_id"] is None


@pytest.mark.parametrize("answer", [None, HeyGemError(ErrorCode.NOT_FOUND, "batch"), RuntimeError("down")])
def test_anything_but_success_goes_to_the_app(answer):
    app = App(Snapshots(answer))
    assert request(ProgressFastPath(app, Authenticator({})), "/api/progress/nope") == (418, b"app")
    assert app.seen == ["/api/progress/nope"]


@pytest.mark.parametrize("method, path", [("GET", "/api/batches"), ("POST", "/api/progress"),
                                          ("GET", "/api/progress/b1/stream"), ("GET", "/api/progress/"),
                                          ("GET", "/api/progressive")])
def test_other_requests_go_to_the_app(method, path):
    service = Snapshots()
    app = App(service)
    assert request(ProgressFastPath(app, Authenticator({})), path, method) == (418, b"app")
    assert app.seen == [path] and service.calls == []


def test_with_login_each_user_is_answered_as_themselves():
    service = Snapshots()
    app = App(service)
    auth = Authenticator({"alice": "pw-a", "bob": "pw-b"})
    front = ProgressFastPath(app, auth)
    assert request(front, "/api/progress/b1")[0] == 418  # no login: the app's auth refuses it
    assert request(front, "/api/progress/b1", headers=basic("alice", "wrong"))[0] == 418
    assert request(front, "/api/progress/b1", headers=basic("alice", "pw-a")) == (200, BODY)
    token = auth.token_for("bob").encode()
    assert request(front, "/api/progress", query=b"token=" + token) == (200, BODY)
    assert service.calls == [("b1", "alice"), (None, "bob")] and len(app.seen) == 2


class Recording(ProgressFastPath):
    """The fast path, noting whether each polling request came from the protocol (a bare dict
    of path, headers and query) or through ASGI (a whole scope)."""

    def __init__(self, app, authenticator) -> None:
        super().__init__(app, authenticator)
        self.via: list[str] = []

    def answer(self, scope):
        if scope["path"].startswith("/api/progress"):
            self.via.append("asgi" if "type" in scope else "protocol")
        return super().answer(scope)


class Transport:
    """Stands in for the socket's transport: keeps what is written."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_extra_info(self, name: str, default=None):
        return {"sockname": ("127.0.0.1", 7860), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


def connection(*requests: bytes) -> tuple[Recording, App, bytes]:
    """Feed `requests` (each the bytes of one read, one or more requests) to one connection of
    the polling protocol; the fast path, the app, and everything written back."""
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    app = App(Snapshots())
    front = Recording(app, Authenticator({}))
    protocol_class = polling_protocol(front)
    transport = Transport()

    async def talk() -> None:
        config = Config(app=front, http=protocol_class, log_level="warning")
        config.load()
        protocol = protocol_class(config=config, server_state=ServerState(), app_state={},
                                  _loop=asyncio.get_running_loop())
        protocol.connection_made(transport)
        for data in requests:
            protocol.data_received(data)
            for _ in range(20):  # let ASGI tasks run
                await asyncio.sleep(0)
        protocol.connection_lost(None)  # stops the keep-alive timers

    asyncio.run(talk())
    return front, app, b"".join(transport.written)


def get(path: str, extra: bytes = b"", version: bytes = b"1.1") -> bytes:
    return b"GET " + path.encode() + b" HTTP/" + version + b"\r\nhost: x\r\n" + extra + b"\r\n"


def statuses(written: bytes) -> list[bytes]:
    return re.findall(rb"HTTP/1\.1 (\d{3}) ", written)


def test_protocol_answers_polling_in_one_write():
    front, app, written = connection(get("/api/progress/b1"), get("/api/progress", b"user-agent: x\r\n"))
    assert front.via == ["protocol", "protocol"] and app.seen == []
    first = written[:written.index(BODY) + len(BODY)]
    assert first.startswith(b"HTTP/1.1 200 OK\r\n") and first.endswith(b"\r\n\r\n" + BODY)
    assert b"content-type: application/json\r\n" in first
    assert f"content-length: {len(BODY)}\r\n".encode() in first
    assert statuses(written) == [b"200", b"200"]


@pytest.mark.parametrize("last", [get("/api/progress/b1", version=b"1.0"),
                                  get("/api/progress/b1", b"connection: close\r\n")])
def test_protocol_leaves_the_rest_to_uvicorn(last):
    front, app, written = connection(get("/api/batches"), last)
    assert app.seen == ["/api/batches"] and front.via == ["asgi"]
    assert statuses(written) == [b"418", b"200"]


def test_once_uvicorn_has_the_connection_it_keeps_it():
    front, app, written = connection(get("/api/progress/b1"), get("/api/batches"), get("/api/progress/b1"))
    assert front.via == ["protocol", "asgi"] and app.seen == ["/api/batches"]
    assert statuses(written) == [b"200", b"418", b"200"]


def test_a_request_split_over_two_reads_goes_to_uvicorn():
    request = get("/api/progress/b1")
    front, _, written = connection(request[:10], request[10:])
    assert front.via == ["asgi"] and statuses(written) == [b"200"]


def test_pipelined_requests_keep_their_order():
    front, app, written = connection(get("/api/batches") + get("/api/progress/b1") + get("/api/batches"))
    assert statuses(written) == [b"418", b"200", b"418"]
    assert front.via == ["asgi"] and app.seen == ["/api/batches", "/api/batches"]


@pytest.mark.parametrize("request_bytes", [
    get("/api/progress/b1", b"content-length: 0\r\n"),
    get("/api/progress/b1", b"transfer-encoding: chunked\r\n"),
    get("/api/progress/b1", b"connection: Upgrade\r\nupgrade: websocket\r\n"),
    get("/api/progress/b1", b"Connection: keep-alive, close\r\n"),
    get("/api/progress/b%31"),
    get("/api/progress/b1", b"no colon\r\n"),
    get("/api/progress/b1", b" folded: x\r\n"),
    get("/api/progress/b1", version=b"1.0"),
    get("/api/progress/b1")[:-2],
    get("/api/progress/b1") + get("/api/progress/b1"),
    b"POST /api/progress HTTP/1.1\r\nhost: x\r\n\r\n",
    get("/api/progress/b1").replace(b" HTTP", b"  HTTP"),
    get("/api/progress/b1", b"cookie: " + b"x" * 5000 + b"\r\n"),
])
def test_parse_poll_takes_only_plain_polls(request_bytes):
    assert parse_poll(request_bytes) is None


def test_parse_poll_reads_path_headers_and_query():
    request = get("/api/progress/b1?token=t.1", b"Authorization: Basic eA==\r\nConnection: keep-alive\r\n")
    assert parse_poll(request) == {"path": "/api/progress/b1", "query_string": b"token=t.1",
                                   "headers": [(b"host", b"x"), (b"authorization", b"Basic eA=="),
                                               (b"connection", b"keep-alive")]}


def test_an_answer_is_kept_only_while_fresh(monkeypatch):
    front, _, written = connection(get("/api/progress/b1"), get("/api/progress/b1"),
                                   get("/api/progress/b1", b"authorization: Bearer x\r\n"))
    assert front.via == ["protocol", "protocol"]  # the second, identical poll was kept
    assert statuses(written) == [b"200", b"200", b"200"]
    monkeypatch.setattr("heygem_web.fast_path.POLL_FRESH_S", -1.0)
    front, _, _ = connection(get("/api/progress/b1"), get("/api/progress/b1"))
    assert front.via == ["protocol", "protocol"]
