"""System metrics for the progress snapshot: CPU and memory (psutil), each GPU (NVML).

``system_metrics()`` is meant to be called once a second by every client that polls progress,
so one sample is shared for ``CACHE_TTL_S``: 200 pollers cost one psutil read and one NVML
read per half second. NVML comes from the ``nvidia-ml-py`` package (module ``pynvml``); where
it is missing, or there is no NVIDIA driver, the GPU list is empty and nothing raises.
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from types import ModuleType

import psutil

try:
    import pynvml  # nvidia-ml-py; only binds to the driver at nvmlInit()
except ImportError:  # optional: no GPU metrics without it
    pynvml: ModuleType | None = None  # type: ignore[no-redef]

logger = logging.getLogger(__name__)

CACHE_TTL_S = 0.5  # seconds one sample is served to every caller
BYTES_PER_MB = 1024**2  # NVML reports memory in bytes; the snapshot in MiB ("MB")


@dataclass(frozen=True)
class GpuStats:
    """One GPU as the snapshot shows it."""

    index: int  # NVML device index
    name: str  # e.g. "NVIDIA H100 80GB HBM3"
    utilization: int  # percent of the last sample period the GPU was busy, 0-100
    memory_used_mb: int  # MiB
    memory_total_mb: int  # MiB


@dataclass(frozen=True)
class _Sample:
    """One reading of the machine, shared by every caller for CACHE_TTL_S."""

    taken_at: float  # time.monotonic()
    cpu_percent: float
    memory_percent: float
    gpus: tuple[GpuStats, ...]
    encoded: bytes = b""  # system_metrics() of this sample as UTF-8 JSON


@dataclass
class _State:
    """Module state: NVML's status and the cached sample (tests swap in a fresh one)."""

    nvml_ready: bool | None = None  # None: not tried yet; False: unavailable, never retried
    query_failure_logged: bool = False
    sample: _Sample | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


_state = _State()


def system_metrics() -> dict:
    """``{"cpu_percent", "memory_percent", "gpus": [{index, name, utilization, memory_used_mb,
    memory_total_mb}, …]}``, at most CACHE_TTL_S old.

    CPU is the use since the previous sample (psutil's non-blocking form), so the very first
    call in a process reads 0.0. Each call returns fresh dicts: callers may change them.
    """
    return _as_dict(_current_sample())


def system_metrics_json() -> bytes:
    """`system_metrics()` as UTF-8 JSON, encoded once per sample (for the hot polling path)."""
    return _current_sample().encoded


def _as_dict(sample: _Sample) -> dict:
    return {
        "cpu_percent": sample.cpu_percent,
        "memory_percent": sample.memory_percent,
        "gpus": [asdict(gpu) for gpu in sample.gpus],
    }


def gpu_stats() -> list[GpuStats]:
    """Every NVIDIA GPU, from the same cached sample; [] without NVML or a GPU."""
    return list(_current_sample().gpus)


def _current_sample() -> _Sample:
    """The cached sample, taken anew when it is older than CACHE_TTL_S, by one thread at a time.

    While one thread takes a new sample the others get the previous one rather than wait
    (only the very first sample is waited for), so a poller never queues behind NVML.
    """
    state = _state
    sample = state.sample
    if sample is not None and time.monotonic() - sample.taken_at < CACHE_TTL_S:
        return sample
    if not state.lock.acquire(blocking=sample is None):
        return sample  # another thread is refreshing it right now
    try:
        now = time.monotonic()
        if state.sample is None or now - state.sample.taken_at >= CACHE_TTL_S:
            state.sample = _take_sample(state, now)
        return state.sample
    finally:
        state.lock.release()


def _take_sample(state: _State, now: float) -> _Sample:
    sample = _Sample(
        taken_at=now,
        cpu_percent=float(psutil.cpu_percent(interval=None)),
        memory_percent=float(psutil.virtual_memory().percent),
        gpus=tuple(_read_gpus(state)),
    )
    return replace(sample, encoded=json.dumps(_as_dict(sample), separators=(",", ":")).encode())


def _read_gpus(state: _State) -> list[GpuStats]:
    """Read every GPU through NVML; [] when NVML is unavailable or a query fails."""
    nvml = pynvml
    if nvml is None or not _nvml_ready(state, nvml):
        return []
    try:
        return [_read_gpu(nvml, index) for index in range(nvml.nvmlDeviceGetCount())]
    except nvml.NVMLError as e:
        if not state.query_failure_logged:
            state.query_failure_logged = True
            logger.warning("NVML query failed, GPU metrics left out: %s", e)
        return []


def _read_gpu(nvml: ModuleType, index: int) -> GpuStats:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    return GpuStats(
        index=index,
        name=_text(nvml.nvmlDeviceGetName(handle)),
        utilization=int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu),
        memory_used_mb=int(memory.used) // BYTES_PER_MB,
        memory_total_mb=int(memory.total) // BYTES_PER_MB,
    )


def _nvml_ready(state: _State, nvml: ModuleType) -> bool:
    """Initialise NVML on first use; remember a failure so later calls return at once."""
    if state.nvml_ready is None:
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as e:
            state.nvml_ready = False
            logger.info("no GPU metrics: NVML unavailable (%s)", e)
        else:
            state.nvml_ready = True
            atexit.register(_shutdown_nvml, nvml)
    return state.nvml_ready


def _shutdown_nvml(nvml: ModuleType) -> None:
    try:
        nvml.nvmlShutdown()
    except nvml.NVMLError:
        pass  # the process is exiting; nothing to tell anyone


def _text(value: bytes | str) -> str:
    """A name from NVML as str: older pynvml returns bytes, newer returns str."""
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
