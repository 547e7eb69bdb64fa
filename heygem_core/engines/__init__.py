"""Lip-sync engines behind one interface, the registry, and `auto`.

The registry knows each engine's name, label and whether it can run without importing the engine
itself: an engine (OpenCV, torch, MediaPipe's landmarks) is imported only when it is built, so the
API process can list and choose engines without the render stack."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from heygem_core.config import Settings, get_settings
from heygem_core.engines import builtin
from heygem_core.engines.base import EngineStatus, FrameJob, LipSyncEngine
from heygem_core.engines.wav2lip import checkpoint as wav2lip
from heygem_core.errors import ErrorCode, HeyGemError

AUTO = "auto"


@dataclass(frozen=True)
class EngineEntry:
    """One engine as the registry knows it."""

    status: Callable[[Settings], EngineStatus]  # can it run here, and why not (cheap, no imports)
    engine: str  # "module:Class" of the LipSyncEngine, imported when the engine is built


# Preference order for `auto`: the first available engine wins.
ENGINES: dict[str, EngineEntry] = {
    wav2lip.NAME: EngineEntry(wav2lip.engine_status, "heygem_core.engines.wav2lip.engine:Wav2LipEngine"),
    builtin.NAME: EngineEntry(builtin.engine_status, "heygem_core.engines.builtin.engine:BuiltinEngine"),
}
ENGINE_CHOICES: tuple[str, ...] = (AUTO, *ENGINES)


def engine_statuses(settings: Settings | None = None) -> list[EngineStatus]:
    """Every registered engine with whether it can run here and why not."""
    settings = settings or get_settings()
    return [entry.status(settings) for entry in ENGINES.values()]


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


def engine_class(name: str) -> type[LipSyncEngine]:
    """The class of the registered engine `name`, imported now."""
    module, _, cls = ENGINES[name].engine.partition(":")
    return getattr(importlib.import_module(module), cls)


def create_engine(name: str = AUTO, settings: Settings | None = None) -> LipSyncEngine:
    """Build the engine `name` (or the best one for `auto`), loading its models once."""
    settings = settings or get_settings()
    return engine_class(resolve_engine_name(name, settings))(settings)


__all__ = ["AUTO", "ENGINES", "ENGINE_CHOICES", "EngineEntry", "EngineStatus", "FrameJob", "LipSyncEngine",
           "create_engine", "engine_class", "engine_statuses", "resolve_engine_name"]
