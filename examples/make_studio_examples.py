"""Make the studio's one-click examples in examples/studio/: two small presenter clips and a short
speech track in English and one in Chinese (the 多语言版本 tab's two versions; espeak-ng, else a
speech-like signal). Run once; the outputs are committed so that
the page has them without ffmpeg or espeak at run time.

    .venv/bin/python examples/make_studio_examples.py
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_samples  # noqa: E402

logger = logging.getLogger(__name__)

FOLDER = Path(__file__).resolve().parent / "studio"
WIDTH, HEIGHT = 320, 180  # small: the examples are for trying the page, not judging quality
SECONDS = 2.0  # each presenter clip
SPEECH = "Hello, and welcome to the course."
SPEECH_ZH = "你好,欢迎来到这门课。"  # espeak-ng's Mandarin voice (cmn)


def make(folder: Path = FOLDER) -> list[Path]:
    """Write presenter_a.mp4, presenter_b.mp4 (no motion, a different size), speech.wav and
    speech_zh.wav."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [make_samples.make_presenter_clip(folder / "presenter_a.mp4", WIDTH, HEIGHT, SECONDS),
             make_samples.make_presenter_clip(folder / "presenter_b.mp4", WIDTH, HEIGHT, SECONDS, motion=False)]
    return [*paths, make_speech(folder / "speech.wav", SPEECH, "en-us"),
            make_speech(folder / "speech_zh.wav", SPEECH_ZH, "cmn")]


def make_speech(path: Path, text: str, voice: str) -> Path:
    """`text` spoken by espeak-ng's `voice`, else (no espeak-ng) a speech-like signal."""
    if make_samples.espeak_available():
        return make_samples.make_speech(path, text, voice=voice)
    logger.warning("espeak-ng is not installed: %s is a speech-like signal", path.name)
    return make_samples.make_speechlike(path, seconds=2.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=FOLDER)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    for path in make(args.out):
        logger.info("wrote %s (%d bytes)", path, path.stat().st_size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
