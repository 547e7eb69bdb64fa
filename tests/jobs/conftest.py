"""Fixtures of the job tests: settings with their own workspace, a SQLite store, short inputs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from heygem_core.config import Settings, get_settings
from heygem_core.jobs.sqlite_store import SqliteStore

TONE_SECONDS = 1.0  # a short speech stand-in: renders in a second or two


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    workspace = tmp_path / "workspace"
    for folder in (workspace, workspace / "uploads", workspace / "outputs"):
        folder.mkdir(parents=True, exist_ok=True)
    return replace(get_settings(), workspace=workspace, redis_url="", inprocess_workers=0, auth="",
                   output_dir=None)


@pytest.fixture
def store(settings: Settings):
    store = SqliteStore(settings.jobs_db)
    yield store
    store.close()


@pytest.fixture(scope="session")
def tone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One second of a voiced, syllable-like signal (an amplitude-modulated harmonic tone)."""
    rate = 16000
    t = np.arange(int(rate * TONE_SECONDS)) / rate
    voice = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 8))
    syllables = 0.5 * (1 - np.cos(2 * np.pi * 4 * t))
    path = tmp_path_factory.mktemp("tone") / "tone.wav"
    sf.write(path, (0.3 * voice * syllables / 2).astype(np.float32), rate)
    return path
