"""Shared pytest fixtures: sample inputs made once per session by ``examples/make_samples.py``.

Markers: ``requires_cuda`` (skipped unless torch with CUDA is importable) and ``slow``
(deselect with ``-m "not slow"``).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
if str(EXAMPLES_DIR) not in sys.path:
    sys.path.insert(0, str(EXAMPLES_DIR))

import make_samples  # noqa: E402  (lives in examples/, put on sys.path above)

log = logging.getLogger(__name__)


def pytest_configure(config: pytest.Config) -> None:
    """Register the project's markers."""
    config.addinivalue_line("markers", "requires_cuda: needs torch with a CUDA device")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


def _cuda_available() -> bool:
    """Whether torch is installed and sees a CUDA device."""
    try:
        import torch
    except Exception:  # noqa: BLE001  (missing, or a broken install)
        return False
    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``requires_cuda`` tests where there is no torch or no CUDA device."""
    if not any(item.get_closest_marker("requires_cuda") for item in items):
        return
    if _cuda_available():
        return
    skip = pytest.mark.skip(reason="needs torch with a CUDA device")
    for item in items:
        if item.get_closest_marker("requires_cuda"):
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def track_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Face tracks cached by renders go to a folder of this session, not the real workspace."""
    folder = tmp_path_factory.mktemp("track-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HEYGEM_TRACK_CACHE_DIR", str(folder))
        yield folder


@pytest.fixture(scope="session")
def samples_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session-wide folder that holds every generated sample."""
    return tmp_path_factory.mktemp("samples")


@pytest.fixture(scope="session")
def presenter_clip(samples_dir: Path) -> Path:
    """640x360, 25 fps, 4 s H.264+AAC astronaut presenter with gentle camera motion."""
    return make_samples.make_presenter_clip(samples_dir / "presenter_astronaut.mp4")


@pytest.fixture(scope="session")
def presenter_still(samples_dir: Path) -> Path:
    """640x360 JPEG of the astronaut presenter."""
    return make_samples.make_presenter_still(samples_dir / "presenter_astronaut.jpg")


@pytest.fixture(scope="session")
def presenter_portrait(samples_dir: Path) -> Path:
    """360x640 (portrait), 25 fps, 2 s presenter clip, no rotation tag."""
    return make_samples.make_presenter_clip(samples_dir / "presenter_portrait.mp4", 360, 640, 2.0)


@pytest.fixture(scope="session")
def presenter_rotated(samples_dir: Path, presenter_portrait: Path) -> Path:
    """Phone-style copy of ``presenter_portrait``: 640x360 pixels stored, tagged rotate 90."""
    return make_samples.make_rotated(presenter_portrait, samples_dir / "presenter_rotated.mp4")


def _speech(samples_dir: Path, name: str, text: str, voice: str, speed: int, seed: int) -> Path:
    """espeak-ng speech, or a synthetic speech-like stand-in where espeak-ng is missing."""
    path = samples_dir / name
    if make_samples.espeak_available():
        return make_samples.make_speech(path, text, voice, speed)
    log.warning("espeak-ng not installed: %s is synthetic speech-like audio", name)
    return make_samples.make_speechlike(path, 4.5, seed=seed)


@pytest.fixture(scope="session")
def speech_en(samples_dir: Path) -> Path:
    """About 5 s of English speech (22050 Hz mono wav) with pauses between sentences."""
    return _speech(samples_dir, "speech_en.wav", make_samples.EN_TEXT, "en-us", 150, seed=1)


@pytest.fixture(scope="session")
def speech_zh(samples_dir: Path) -> Path:
    """About 5 s of Mandarin speech (22050 Hz mono wav) with pauses between sentences."""
    return _speech(samples_dir, "speech_zh.wav", make_samples.ZH_TEXT, make_samples.ZH_VOICE,
                   make_samples.ZH_SPEED, seed=2)


@pytest.fixture(scope="session")
def audio_variants(samples_dir: Path, speech_en: Path, speech_zh: Path) -> dict[str, Path]:
    """Re-encoded speech: ``wav_8k_mono`` (from zh) and ``mp3_48k_stereo`` (from en)."""
    return {
        "wav_8k_mono": make_samples.convert_audio(speech_zh, samples_dir / "speech_zh_8k.wav",
                                                  8000, 1),
        "mp3_48k_stereo": make_samples.convert_audio(speech_en, samples_dir / "speech_en_48k.mp3",
                                                     48000, 2),
    }


@pytest.fixture(scope="session")
def bad_inputs(samples_dir: Path, presenter_clip: Path) -> dict[str, Path]:
    """Bad inputs by name: empty, text, truncated (.mp4), noface (.jpg), silent, short (.wav)."""
    return make_samples.make_bad_inputs(samples_dir / "bad", valid_mp4=presenter_clip)
