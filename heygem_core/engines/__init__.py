"""Lip-sync engines behind one interface, the registry, and `auto`."""

from __future__ import annotations

from heygem_core.config import Settings, get_settings
from heygem_core.engines.base import EngineStatus, FrameJob, LipSyncEngine
from heygem_core.engines.builtin import BuiltinEngine
from heygem_core.engines.wav2lip import Wav2LipEngine
from heygem_core.errors import ErrorCode, HeyGemError

AUTO = "auto"
# Preference order for `auto`: the first available engine wins.
ENGINES: dict[str, type[LipSyncEngine]] = {Wav2LipEngine.name: Wav2LipEngine,
                                            BuiltinEngine.name: BuiltinEngine}
ENGINE_CHOICES: tuple[str, ...] = (AUTO, *ENGINES)


def engine_statuses(settings: Settings | None = None) -> list[EngineStatus]:
    """Every registered engine with whether it can run here and why not."""
    settings = settings or get_settings()
    return [cls.status(settings) for cls in ENGINES.values()]


def resolve_engine_name(name: str, settings: Settings | None = None) -> str:
    """Turn `auto` into the best available engine; check that a named engine can run."""
    settings = settings or get_settings()
    if name == AUTO:
        for status in engine_statuses(settings):
            if status.available:
                return status.name
        raise HeyGemError(ErrorCode.ENGINE_UNAVAILABLE, "no engine can run here")
    if name not in ENGINES:
        raise HeyGemError(ErrorCode.ENGINE_UNAVAILABLE,
                          f"unknown engine {name!r}; choose one of {', '.join(ENGINE_CHOICES)}")
    status = ENGINES[name].status(settings)
    if not status.available:
        raise HeyGemError(ErrorCode.ENGINE_UNAVAILABLE, f"{name}: {status.reason}")
    return name


def create_engine(name: str = AUTO, settings: Settings | None = None) -> LipSyncEngine:
    """Build the engine `name` (or the best one for `auto`), loading its models once."""
    settings = settings or get_settings()
    resolved = resolve_engine_name(name, settings)
    return ENGINES[resolved](settings)


__all__ = ["AUTO", "ENGINES", "ENGINE_CHOICES", "EngineStatus", "FrameJob", "LipSyncEngine",
           "create_engine", "engine_statuses", "resolve_engine_name"]
