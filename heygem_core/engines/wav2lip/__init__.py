"""The Wav2Lip engine: the official network (`model`, loads the public checkpoints) and the engine
that runs it (`engine`)."""

from heygem_core.engines.wav2lip.engine import Wav2LipEngine

__all__ = ["Wav2LipEngine"]
