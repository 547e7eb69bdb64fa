"""HeyGem batch lip-sync: the engine room (no Gradio, no FastAPI)."""

from heygem_core.errors import ErrorCode, HeyGemError

__all__ = ["ErrorCode", "HeyGemError"]
