"""How far can any audio-driven mouth get on the shared clips? (issue 12, the r >= 0.6 target)

For each clip with its own speech, the speaker's measured inner-lip opening (the landmark pass of
`quality.py`) is compared, at lag 0, with openings predicted from the same clip's audio by:

- `shipped`: the built-in engine's articulation (`articulate()`), as rendered;
- `loudness`: the speech level (smoothed over 50 ms, led by LEAD_S), the old engine's driver;
- `phones (ASR)`: CMU PocketSphinx's English recogniser (BSD; acoustic model trained on real
  speech) transcribes the clip, aligns its own transcript phone by phone, and each phone gets its
  viseme (`visemes.py`); the lead is the best of LEADS, so this is an optimistic bound for any
  phoneme-driven mouth that uses our viseme table (only meaningful on the English clip);
- `ridge, own half`: a ridge regression from the model's input features (`acoustics`) to the
  speaker's own opening, fitted on one half of the clip and tested on the other (mean of both
  ways): what a per-speaker model of this size could learn from ~5 s of that speaker;
- `ridge, other clip`: the same fitted on another clip's speaker (per-presenter calibration from
  the presenter video's own speech), median over the other clips.

    pip install pocketsphinx    # optional: without it the phones column is left out
    python benchmarks/articulation_bounds.py
"""

from __future__ import annotations

import logging
import statistics
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from heygem_core.engines.builtin import acoustics  # noqa: E402
from heygem_core.engines.builtin.articulation import LEAD_S, articulate  # noqa: E402
from heygem_core.engines.builtin.visemes import SILENCE, viseme  # noqa: E402
from heygem_core.face.opening import measure_openings  # noqa: E402
from heygem_core.media.audio import AudioClip, load_audio  # noqa: E402
from quality import MEDIA, REAL, extract_audio, pearson  # noqa: E402

log = logging.getLogger("articulation_bounds")

LEADS = np.arange(-0.1, 0.31, 0.02)  # s, searched for the phone track
RIDGE = 300.0  # regularisation of the ridge fits (features are normalised to ~unit spread)
ARPABET = {  # PocketSphinx's phones in the IPA symbols visemes.py knows
    "AA": "ɑ", "AE": "æ", "AH": "ʌ", "AO": "ɔ", "AW": "a", "AY": "a", "EH": "ɛ", "ER": "ɚ", "EY": "e",
    "IH": "ɪ", "IY": "i", "OW": "o", "OY": "ɔ", "UH": "ʊ", "UW": "u", "B": "b", "CH": "ʃ", "D": "d",
    "DH": "ð", "F": "f", "G": "g", "HH": "h", "JH": "ʒ", "K": "k", "L": "l", "M": "m", "N": "n",
    "NG": "ŋ", "P": "p", "R": "ɹ", "S": "s", "SH": "ʃ", "T": "t", "TH": "θ", "V": "v", "W": "w",
    "Y": "j", "Z": "z", "ZH": "ʒ"}


def features(clip: AudioClip, fps: float, n: int) -> np.ndarray:
    mel = acoustics.log_mel(clip.samples, clip.sample_rate)
    return acoustics.context_features(acoustics.normalise(mel), acoustics.frame_times(fps, n) + LEAD_S)


def loudness(clip: AudioClip, fps: float, n: int) -> np.ndarray:
    level = ndimage.uniform_filter1d(acoustics.level_db(acoustics.log_mel(clip.samples, clip.sample_rate)), 5)
    rows = ((acoustics.frame_times(fps, n) + LEAD_S) * acoustics.ROWS_PER_S).astype(int)
    return level[np.clip(rows, 0, len(level) - 1)]


def ridge(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.linalg.solve(x.T @ x + RIDGE * np.eye(x.shape[1]), x.T @ (y - y.mean()))


def own_half(x: np.ndarray, y: np.ndarray) -> float:
    h = len(y) // 2
    return (pearson(x[h:] @ ridge(x[:h], y[:h]), y[h:]) + pearson(x[:h] @ ridge(x[h:], y[h:]), y[:h])) / 2


def aligned_phones(wav: Path) -> list[tuple[str, float, float]] | None:
    """(phone, start s, end s) of PocketSphinx's own transcript aligned to the audio; None
    without pocketsphinx."""
    try:
        from pocketsphinx import Decoder
    except ImportError:
        return None
    with wave.open(str(wav), "rb") as f:
        data = f.readframes(f.getnframes())
    decoder = Decoder(loglevel="FATAL")

    def decode() -> None:
        decoder.start_utt()
        decoder.process_raw(data, full_utt=True)
        decoder.end_utt()

    decode()
    text = decoder.hyp().hypstr if decoder.hyp() else ""
    log.info("%s heard as: %s", wav.stem, text)
    decoder.set_align_text(text)
    decode()
    decoder.set_alignment()
    decode()
    return [(p.name, p.start / 100, (p.start + p.duration) / 100) for w in decoder.get_alignment() for p in w]


def phone_track(phones: list[tuple[str, float, float]], fps: float, n: int, lead: float) -> np.ndarray:
    """Viseme openings at phone centres, interpolated; lips together through /p b m/ and silence."""
    t = acoustics.frame_times(fps, n) + lead
    shapes = [viseme(ARPABET[p]) if p in ARPABET else SILENCE for p, _, _ in phones]
    opening = np.interp(t, [(a + b) / 2 for _, a, b in phones], [s.opening for s in shapes])
    for shape, (_, a, b) in zip(shapes, phones):
        if shape.closed:
            opening[(t >= a) & (t < b)] = 0.0
    return opening


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not all((MEDIA / name).exists() for name in REAL):
        print(f"needs the shared clips in {MEDIA}")
        return 1
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in REAL:
            track = measure_openings(MEDIA / name)
            wav = extract_audio(MEDIA / name, Path(tmp) / f"{Path(name).stem}.wav")
            clip = load_audio(wav)
            n, fps = len(track.opening), track.fps
            rows[name] = dict(ref=track.opening, x=features(clip, fps, n),
                              shipped=pearson(articulate(clip, fps, n).opening, track.opening),
                              loudness=pearson(loudness(clip, fps, n), track.opening),
                              phones=aligned_phones(wav), fps=fps)
    head = ["clip", "shipped", "loudness", "phones (ASR), best lead", "ridge, own half", "ridge, other clip"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for name, row in rows.items():
        others = [pearson(row["x"] @ ridge(o["x"], o["ref"]), row["ref"]) for k, o in rows.items() if k != name]
        phones = "-"
        if row["phones"]:
            scores = [pearson(phone_track(row["phones"], row["fps"], len(row["ref"]), lead), row["ref"]) for lead in LEADS]
            best = int(np.nanargmax(scores))
            phones = f"{scores[best]:.2f} at {LEADS[best]:+.2f} s"
        print(f"| {name} | {row['shipped']:.2f} | {row['loudness']:.2f} | {phones} | "
              f"{own_half(row['x'], row['ref']):.2f} | {statistics.median(others):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
