"""The built-in engine (no weights): articulation from the speech, the lip and jaw warp, the mouth
interior, and the engine that composites them."""

from heygem_core.engines.builtin.engine import BuiltinEngine

__all__ = ["BuiltinEngine"]
