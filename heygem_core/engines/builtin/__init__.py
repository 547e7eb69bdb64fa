"""The built-in engine (no weights): articulation from the speech (`articulation`), the lip and
jaw warp and the painted interior (`warp`), and the engine that composites them (`engine`). Only
its name and status live here, so that listing the engines loads none of it."""

from __future__ import annotations

from heygem_core.config import Settings
from heygem_core.engines.base import EngineStatus

NAME = "builtin"
LABEL = "内置口型 (Built-in, no weights)"


def engine_status(settings: Settings) -> EngineStatus:
    """Always available: it needs nothing but the core's own packages."""
    return EngineStatus(NAME, LABEL, available=True)
