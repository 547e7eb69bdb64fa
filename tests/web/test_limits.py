"""Upload limits on a real server: refused from the Content-Length at once, while streaming when
there is none, a cap on parts, and the documented error shape for malformed uploads."""

from __future__ import annotations

import json
import select
import socket
import time

import httpx
import pytest

from tests.server_util import Server

MB = 1024**2
BOUNDARY = b"hgTestBoundary"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("limits-workspace"), HEYGEM_MAX_UPLOAD_MB="1",
                 HEYGEM_MAX_REQUEST_MB="4", HEYGEM_MAX_BATCH_ITEMS="10").start()
    yield srv
    srv.stop()


def head(server: Server, extra: str) -> bytes:
    return (f"POST /start_batch HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY.decode()}\r\n{extra}\r\n").encode()


def answer(sock: socket.socket, timeout: float = 10.0) -> tuple[int, dict]:
    """The status and JSON body of the response on `sock`."""
    data, deadline = b"", time.monotonic() + timeout
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
        assert time.monotonic() < deadline, data
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, json.loads(data.split(b"\r\n\r\n", 1)[1])


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def test_a_content_length_over_the_limit_is_refused_before_the_body(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        start = time.monotonic()
        sock.sendall(head(server, f"Content-Length: {2 * 1024 * MB}\r\n"))  # 2 GiB announced, none sent
        status, body = answer(sock)
        took = time.monotonic() - start
    assert status == 413 and body["error_code"] == "file_too_large" and took < 2.0


def test_a_streamed_file_over_the_limit_is_refused_while_it_arrives(server: Server) -> None:
    part = (b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="videos"; filename="big.mp4"\r\n'
            b"Content-Type: video/mp4\r\n\r\n")
    chunk = b"x" * (64 * 1024)
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head(server, "Transfer-Encoding: chunked\r\n"))
        sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        while sent < 100 * MB:  # a 100 MB file against a 1 MB limit, without a length
            if select.select([sock], [], [], 0)[0]:
                break  # the server has answered
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        status, body = answer(sock)
    assert status == 413 and body["error_code"] == "file_too_large"
    assert sent < 8 * MB  # refused after about the limit, not after the whole file


def test_more_parts_than_a_batch_can_use_are_refused(server: Server) -> None:
    files = [("videos", (f"v{i}.mp4", b"x")) for i in range(200)] + [("audio", ("a.wav", b"x"))]
    response = httpx.post(f"{server.url}/start_batch", files=files, timeout=30)
    assert response.status_code == 400 and response.json()["error_code"] == "request_invalid"


@pytest.mark.parametrize("request_args", [
    {"files": [("audio", ("x" * 5000 + ".wav", b"abc")), ("videos", ("v.mp4", b"abc"))]},
    {"content": b"abc", "headers": {"content-type": "multipart/form-data"}},  # no boundary
])
def test_malformed_uploads_answer_the_documented_error_shape(server: Server, request_args: dict) -> None:
    response = httpx.post(f"{server.url}/start_batch", timeout=30, **request_args)
    assert response.status_code == 400
    assert set(response.json()) >= {"error_code", "message"} and "detail" not in response.json()
