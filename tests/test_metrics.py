"""System metrics: shape, no GPU here, a fake NVML with two GPUs, NVML failing, the cache."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from heygem_core import metrics
from heygem_core.metrics import GpuStats, gpu_stats, system_metrics

MB = 1024**2


class FakeNVMLError(Exception):
    """Stands in for pynvml.NVMLError."""


class FakeNVML:
    """Two GPUs; the first name comes back as bytes (old pynvml), the second as str."""

    NVMLError = FakeNVMLError

    def __init__(self) -> None:
        self.init_calls = 0

    def nvmlInit(self) -> None:
        self.init_calls += 1

    def nvmlShutdown(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> bytes | str:
        return b"NVIDIA H100 80GB HBM3" if handle == 0 else "NVIDIA A10G"

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(gpu=93 if handle == 0 else 0, memory=10)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        total = 81559 * MB if handle == 0 else 23028 * MB
        return SimpleNamespace(used=5120 * MB + 123, free=total - 5120 * MB, total=total)


class BrokenNVML(FakeNVML):
    """NVML without a driver: init fails."""

    def nvmlInit(self) -> None:
        self.init_calls += 1
        raise FakeNVMLError("Driver Not Loaded")


@pytest.fixture(autouse=True)
def fresh_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with NVML untried and nothing cached."""
    monkeypatch.setattr(metrics, "_state", metrics._State())


@pytest.fixture
def no_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "CACHE_TTL_S", 0.0)


def test_keys_and_types() -> None:
    snapshot = system_metrics()
    assert set(snapshot) == {"cpu_percent", "memory_percent", "gpus"}
    assert isinstance(snapshot["cpu_percent"], float)
    assert isinstance(snapshot["memory_percent"], float)
    assert 0.0 <= snapshot["memory_percent"] <= 100.0
    assert isinstance(snapshot["gpus"], list)


NVIDIA_DRIVER = Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidiactl").exists()


@pytest.mark.skipif(NVIDIA_DRIVER, reason="an NVIDIA driver is present: its GPUs are reported")
def test_no_gpu_here_gives_an_empty_list() -> None:
    # without an NVIDIA driver (if pynvml is installed, its init fails)
    assert system_metrics()["gpus"] == []
    assert gpu_stats() == []


def test_two_fake_gpus_are_reported_in_mb_with_str_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "pynvml", FakeNVML())
    gpus = system_metrics()["gpus"]
    assert gpus == [
        {"index": 0, "name": "NVIDIA H100 80GB HBM3", "utilization": 93,
         "memory_used_mb": 5120, "memory_total_mb": 81559},
        {"index": 1, "name": "NVIDIA A10G", "utilization": 0,
         "memory_used_mb": 5120, "memory_total_mb": 23028},
    ]
    assert gpu_stats()[0] == GpuStats(0, "NVIDIA H100 80GB HBM3", 93, 5120, 81559)
    assert json.loads(metrics.system_metrics_json()) == system_metrics()  # the same sample


def test_nvml_is_initialised_once(monkeypatch: pytest.MonkeyPatch, no_cache: None) -> None:
    fake = FakeNVML()
    monkeypatch.setattr(metrics, "pynvml", fake)
    for _ in range(3):
        assert len(system_metrics()["gpus"]) == 2
    assert fake.init_calls == 1


def test_failing_nvml_init_gives_no_gpus_and_is_not_retried(
        monkeypatch: pytest.MonkeyPatch, no_cache: None, caplog: pytest.LogCaptureFixture) -> None:
    broken = BrokenNVML()
    monkeypatch.setattr(metrics, "pynvml", broken)
    caplog.set_level("DEBUG", logger=metrics.__name__)
    for _ in range(3):
        assert system_metrics()["gpus"] == []
    assert broken.init_calls == 1
    assert len(caplog.records) == 1 and "NVML unavailable" in caplog.records[0].getMessage()


def test_a_failing_query_gives_no_gpus_and_logs_once(
        monkeypatch: pytest.MonkeyPatch, no_cache: None, caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeNVML()

    def lost(handle: int) -> SimpleNamespace:
        raise FakeNVMLError("GPU is lost")

    fake.nvmlDeviceGetMemoryInfo = lost  # type: ignore[method-assign]
    monkeypatch.setattr(metrics, "pynvml", fake)
    for _ in range(3):
        assert system_metrics()["gpus"] == []
    assert len([r for r in caplog.records if "NVML query failed" in r.getMessage()]) == 1


def test_without_pynvml_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "pynvml", None)
    assert system_metrics()["gpus"] == []


def test_calls_within_the_ttl_read_psutil_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"cpu": 0, "memory": 0}
    clock = {"now": 1000.0}

    def cpu_percent(interval: float | None = None) -> float:
        assert interval is None  # never blocks
        calls["cpu"] += 1
        return 12.5

    def virtual_memory() -> SimpleNamespace:
        calls["memory"] += 1
        return SimpleNamespace(percent=40.2)

    monkeypatch.setattr(metrics.psutil, "cpu_percent", cpu_percent)
    monkeypatch.setattr(metrics.psutil, "virtual_memory", virtual_memory)
    monkeypatch.setattr(metrics.time, "monotonic", lambda: clock["now"])

    first = system_metrics()
    clock["now"] += 0.3
    second = system_metrics()
    assert calls == {"cpu": 1, "memory": 1}
    assert first == second == {"cpu_percent": 12.5, "memory_percent": 40.2, "gpus": []}

    clock["now"] += 0.3  # 0.6 s after the first sample: stale
    system_metrics()
    assert calls == {"cpu": 2, "memory": 2}


def test_callers_get_their_own_dicts() -> None:
    first = system_metrics()
    first["gpus"].append({"bogus": 1})
    first["cpu_percent"] = -1.0
    second = system_metrics()
    assert second["gpus"] == [] and second["cpu_percent"] != -1.0
