"""The Wav2Lip engine: whether it can run (`checkpoint`), the official network (`model`, loads the
public checkpoints) and the engine that runs it (`engine`, imports torch when built)."""
