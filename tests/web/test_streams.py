"""SSE and WebSocket progress loops end within seconds of their client going away, whether or
not the batch changes: dropped clients cost the server nothing afterwards."""

from __future__ import annotations

import base64
import os
import socket
import time

import httpx
import psutil
import pytest

from tests.server_util import Server

CLIENTS = 150  # dropped at once, as a flaky network or a closed laptop lid does
SETTLE_S = 3.0  # the loops have this long to notice
IDLE_CPU_PERCENT = 10.0  # of one core, measured over MEASURE_S after that
MEASURE_S = 3.0


@pytest.fixture(scope="module")
def queued(tmp_path_factory, presenter_clip, speech_en):
    """A server without workers and a batch that stays queued: nothing ever changes."""
    srv = Server(tmp_path_factory.mktemp("streams-workspace"), HEYGEM_INPROCESS_WORKERS="0").start()
    files = [("audio", (speech_en.name, speech_en.read_bytes())),
             ("videos", (presenter_clip.name, presenter_clip.read_bytes()))]
    batch_id = httpx.post(f"{srv.url}/start_batch", files=files, timeout=60).json()["batch_id"]
    yield srv, batch_id
    srv.stop()


def websocket(port: int, batch_id: str) -> socket.socket:
    """A WebSocket to the batch's progress, handshake done, the first snapshot waiting unread."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /ws/progress/{batch_id} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    assert sock.recv(4096).startswith(b"HTTP/1.1 101")
    return sock


def event_stream(port: int, batch_id: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(f"GET /api/progress/{batch_id}/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    return sock


def drop(sock: socket.socket) -> None:
    """Close without a goodbye: a reset, no WebSocket close frame, no FIN handshake."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


def server_cpu(srv: Server) -> float:
    process = psutil.Process(srv.proc.pid)
    process.cpu_percent(None)
    time.sleep(MEASURE_S)
    return process.cpu_percent(None)


@pytest.mark.parametrize("open_stream", [websocket, event_stream], ids=["websocket", "sse"])
def test_dropped_clients_stop_costing_cpu(queued, open_stream) -> None:
    srv, batch_id = queued
    before = server_cpu(srv)
    sockets = [open_stream(srv.port, batch_id) for _ in range(CLIENTS)]
    for sock in sockets:
        drop(sock)
    time.sleep(SETTLE_S)
    after = server_cpu(srv)
    assert after < max(IDLE_CPU_PERCENT, 2 * before), (before, after)
    assert httpx.get(f"{srv.url}/healthz", timeout=10).status_code == 200
