"""A real `redis-server` for tests: its own port on 127.0.0.1, its own folder, AOF persistence."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.server_util import free_port

START_S = 15  # every wait is bounded
REDIS_SERVER = shutil.which("redis-server")
SKIP_REASON = "redis-server is not installed (apt-get install redis-server)"


class RedisServer:
    """`redis-server --port <free> --bind 127.0.0.1 --appendonly yes --dir <folder>`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.folder),
             "--protected-mode", "yes", "--logfile", str(self.folder / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    client.close()
                    return
            except (redis.ConnectionError, redis.BusyLoadingError):
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def stop(self) -> None:
        """Stop it (SIGTERM: the AOF is flushed) and wait."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(START_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(START_S)
        self.proc = None

    def restart(self, down_s: float = 0.0) -> None:
        """Stop, stay down `down_s` seconds, start again on the same port and folder."""
        self.stop()
        time.sleep(down_s)
        self.start()


@contextmanager
def backend_env(name: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The app's environment for a store backend: {} for "sqlite"; for "redis" a redis-server of
    its own, stopped afterwards (the test is skipped where redis-server is not installed)."""
    if name == "sqlite":
        yield {}
        return
    if REDIS_SERVER is None:
        pytest.skip(SKIP_REASON)
    redis = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield {"HEYGEM_REDIS_URL": redis.url}
    finally:
        redis.stop()
