"""The app's worker process, supervised: started, watched, restarted when it dies, stopped.

A watcher thread polls the child every POLL_S (which also reaps it: no zombie is left). When it
has died, the real-time log says so, `on_death(pid)` gives its items back, and after a back-off
(`worker_restart_s`, doubled after each death within STABLE_S of a start, at most
`worker_restart_max_s`) a new one is started and logged.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from heygem_core.realtime_log import log_event

logger = logging.getLogger(__name__)

POLL_S = 0.2      # how often the watcher looks at the child
STABLE_S = 60.0   # a worker that ran this long before dying is restarted after the shortest wait
STOP_S = 30       # seconds a stop waits for the worker to put its running item back


@dataclass
class WorkerState:
    """What /healthz says about the supervised worker."""

    pid: int | None        # the running process, or the last one while it is down
    alive: bool
    threads: int           # items it renders at once
    restarts: int          # times it was started again after dying
    last_exit: int | None  # the last dead one's exit status (-9: killed by SIGKILL)
    started_at: float      # when the current (or last) one started (epoch seconds)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class WorkerSupervisor:
    """Runs `command` as a child and keeps one running until `stop()`."""

    def __init__(self, command: Sequence[str], env: dict[str, str], threads: int, *,
                 restart_s: float, restart_max_s: float, on_death: Callable[[int], object]) -> None:
        self.command, self.env, self.threads = list(command), env, threads
        self.restart_s, self.restart_max_s, self.on_death = restart_s, restart_max_s, on_death
        self.restarts, self.last_exit = 0, None
        self.process: subprocess.Popen | None = None
        self._started_at, self._started_mono = 0.0, 0.0
        self._quick_deaths = 0  # deaths in a row, each within STABLE_S of its start
        self._lock = threading.Lock()  # the child is started and stopped under it
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="heygem-supervisor", daemon=True)

    def start(self) -> None:
        self._spawn()
        self._thread.start()

    def _spawn(self) -> None:
        with self._lock:
            if self._stop.is_set():
                return
            self.process = subprocess.Popen(self.command, env=self.env)
            self._started_at, self._started_mono = time.time(), time.monotonic()
        logger.info("started worker process %d", self.process.pid)

    def state(self) -> WorkerState:
        process = self.process
        alive = process is not None and process.poll() is None
        return WorkerState(process.pid if process else None, alive, self.threads, self.restarts,
                           self.last_exit, self._started_at)

    def _watch(self) -> None:
        while not self._stop.wait(POLL_S):
            process = self.process
            if process is None or process.poll() is None:
                continue
            self._died(process)
            if self._stop.wait(self._backoff()):
                return
            self._spawn()
            self.restarts += 1
            log_event(f"工作进程已重启:pid {self.process.pid}(第 {self.restarts} 次) / worker restarted: pid {self.process.pid} "
                      f"(restart {self.restarts})", level=logging.WARNING)

    def _died(self, process: subprocess.Popen) -> None:
        """Log the death, give the dead worker's items back, count a quick death."""
        code = process.returncode
        self.last_exit = code
        how = _exit_words(code)
        log_event(f"工作进程 {process.pid} 已退出 / worker {process.pid} died ({how})",
                  level=logging.ERROR)
        ran = time.monotonic() - self._started_mono
        self._quick_deaths = self._quick_deaths + 1 if ran < STABLE_S else 1
        try:
            self.on_death(process.pid)
        except Exception:  # noqa: BLE001  (the store down: the reaper gives them back later)
            logger.exception("could not give back the items of worker %d", process.pid)

    def _backoff(self) -> float:
        """The wait before the next start: doubled per quick death in a row, capped."""
        return min(self.restart_s * 2 ** (self._quick_deaths - 1), self.restart_max_s)

    def stop(self) -> None:
        """Stop watching, then ask the worker to stop (SIGTERM: it puts its item back), wait
        STOP_S, kill it if it is still there."""
        with self._lock:
            self._stop.set()
        self._thread.join(STOP_S)
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _exit_words(code: int) -> str:
    """"signal SIGKILL" for -9, "exit status 1" for 1."""
    if code >= 0:
        return f"exit status {code}"
    try:
        return f"signal {signal.Signals(-code).name}"
    except ValueError:
        return f"signal {-code}"
