"""The worker supervisor on a stand-in child (a sleeping Python): a child killed with -9 is
reaped, reported, and started again after the back-off; stop() ends it."""

from __future__ import annotations

import os
import signal
import sys
import time

import psutil
import pytest

from heygem_core.jobs.supervisor import WorkerSupervisor

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]
WAIT_S = 15.0
SLACK_S = 1.5  # a loaded machine: the watcher's poll and the start of a Python child


def wait_for(condition, timeout: float = WAIT_S) -> float:
    """Seconds until `condition()` held (bounded)."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, "timed out"
        time.sleep(0.02)
    return time.monotonic() - start


@pytest.fixture
def deaths() -> list[int]:
    return []


@pytest.fixture
def supervisor(deaths: list[int]):
    made = WorkerSupervisor(SLEEPER, dict(os.environ), threads=2, restart_s=0.5, restart_max_s=1.5,
                            on_death=deaths.append)
    made.start()
    yield made
    made.stop()


def test_a_killed_worker_is_reaped_and_started_again(supervisor: WorkerSupervisor,
                                                     deaths: list[int]) -> None:
    first = supervisor.state()
    assert first.alive and first.restarts == 0 and first.threads == 2
    os.kill(first.pid, signal.SIGKILL)
    wait_for(lambda: deaths == [first.pid])
    down = supervisor.state()
    assert not down.alive and down.last_exit == -signal.SIGKILL and down.pid == first.pid
    assert not psutil.pid_exists(first.pid)  # reaped: no zombie
    after = wait_for(lambda: supervisor.state().alive)
    assert 0.3 < after < 0.5 + SLACK_S
    again = supervisor.state()
    assert again.pid != first.pid and again.restarts == 1 and again.last_exit == -9


def test_quick_deaths_wait_longer_up_to_the_cap(supervisor: WorkerSupervisor) -> None:
    waits = []
    for _ in range(3):
        pid = supervisor.state().pid
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not supervisor.state().alive)
        waits.append(wait_for(lambda: supervisor.state().alive and supervisor.state().pid != pid))
    assert waits[0] < 0.5 + SLACK_S  # then doubled, then capped at 1.5 s
    assert 1.0 - 0.1 < waits[1] < 1.0 + SLACK_S and 1.5 - 0.1 < waits[2] < 1.5 + SLACK_S
    assert supervisor.state().restarts == 3


def test_stop_ends_the_worker_and_restarts_nothing(deaths: list[int]) -> None:
    made = WorkerSupervisor(SLEEPER, dict(os.environ), threads=1, restart_s=0.1, restart_max_s=0.1,
                            on_death=deaths.append)
    made.start()
    pid = made.state().pid
    made.stop()
    assert not psutil.pid_exists(pid) and not made.state().alive
    time.sleep(0.3)
    assert deaths == [] and made.state().pid == pid
