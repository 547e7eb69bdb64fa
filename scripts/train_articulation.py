"""Train the built-in engine's articulation model: speech -> mouth opening, rounding and closure.

The training data is made here, not downloaded: espeak-ng speaks random words and syllables in
several languages and voices, reports when each phoneme starts (`examples/phoneme_speech.py`),
and each 10 ms of the speech gets the mouth shape of its phoneme (`visemes.py`). The audio is
roughened (noise, room echo, a telephone band, other spectral tilts) so that the model learns the
sounds, not espeak's voice. The model is a one-hidden-layer network small enough to ship in the
repository (`heygem_core/engines/builtin/articulation.npz`, 40 KB) and to run in numpy.

    .venv/bin/python scripts/train_articulation.py            # 1-2 minutes on 2 cores (1 min 39 s with --festival 0.5)
    .venv/bin/python scripts/train_articulation.py --utterances 100 --out /tmp/a.npz   # quick
    .venv/bin/python scripts/train_articulation.py --festival 0.5 --out /tmp/f.npz   # half Festival

`--festival` adds speech from Festival's voices made from real speakers' recordings
(`examples/festival_speech.py`; Debian's festival and festvox-* packages), an experiment that did
not raise the correlation with real speakers' mouths (benchmarks/README.md); the shipped model is
the default, espeak-ng only.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "examples")]

from heygem_core.engines.builtin import acoustics  # noqa: E402
from heygem_core.engines.builtin.model import ArticulationModel, OUTPUTS  # noqa: E402
from heygem_core.engines.builtin.visemes import SILENCE, viseme  # noqa: E402
import festival_speech  # noqa: E402
from phoneme_speech import Speaker, Utterance  # noqa: E402

log = logging.getLogger("train_articulation")

SEED = 12
HIDDEN = 48
EPOCHS = 25
FESTIVAL_SHARE = 0.0  # of the utterances from Festival (when installed); 0.3-0.5 measured no better on real speech (benchmarks/README.md)
SILENCE_DB = 40.0  # synthesised rows this far below the utterance's loud speech are pauses
COARTICULATION_S = 0.03  # targets are smoothed over this much (lips do not jump)
ENGLISH = ("the and that have with this from they will would there their what about which when "
           "make like time just know take people into year your good some could them see other "
           "than then now look only come over think also back after use two how our work first "
           "well way even new want because any these give day most us map bob papa mama baby "
           "apple open shop money happy brother video lecture teacher school student music "
           "important morning evening number problem question answer water father mother "
           "beautiful wonderful thank you please yes no maybe okay very much every moment").split()
PINYIN_INITIALS = "b p m f d t n l g k h j q x zh ch sh r z c s y w".split()
PINYIN_FINALS = "a o e i u ai ei ao ou an en ang eng ong ia ie iao iu ian in iang ing ua uo uai ui uan un".split()
VOICES = {  # voice -> how its text is made
    "en-us": "english", "en": "english", "en-us+f3": "english", "en-us+m3": "english",
    "en+f2": "english", "en-us+m7": "english", "en-029": "english", "cmn-latn-pinyin": "pinyin",
    "cmn-latn-pinyin+f3": "pinyin", "de": "syllables", "es": "syllables", "fr": "syllables",
    "it": "syllables", "ru": "cyrillic", "pt-br": "syllables",
}
LATIN_C, LATIN_V = "bcdfghjklmnprstvwz", "aeiou"
CYRILLIC_C, CYRILLIC_V = "бвгдзклмнпрстфхшж", "аеиоуыя"


def make_text(kind: str, rng: np.random.Generator) -> str:
    """A random utterance of 6-14 words (or syllable groups), with a comma or full stop between some."""
    words = []
    for _ in range(int(rng.integers(6, 15))):
        if kind == "english":
            word = str(rng.choice(ENGLISH))
        elif kind == "pinyin":
            word = f"{rng.choice(PINYIN_INITIALS)}{rng.choice(PINYIN_FINALS)}{rng.integers(1, 5)}"
        else:
            cons, vow = (CYRILLIC_C, CYRILLIC_V) if kind == "cyrillic" else (LATIN_C, LATIN_V)
            word = "".join(str(rng.choice(list(cons))) + str(rng.choice(list(vow)))
                           for _ in range(int(rng.integers(1, 4))))
        words.append(word + str(rng.choice(["", "", "", "", ",", "."])))
    return " ".join(words)


def targets(utterance: Utterance, n_rows: int, level: np.ndarray) -> np.ndarray:
    """(n_rows, 3) opening, rounding and closure of each 10 ms row, smoothed a little."""
    out = np.tile(np.array([SILENCE.opening, SILENCE.rounding, 1.0], np.float32), (n_rows, 1))
    for phone in utterance.phones:
        shape = viseme(phone.symbol)
        lo, hi = int(phone.start * acoustics.ROWS_PER_S), int(np.ceil(phone.end * acoustics.ROWS_PER_S))
        out[lo:hi] = (shape.opening, shape.rounding, float(shape.closed))
    pause = level < np.percentile(level, 95) - SILENCE_DB
    out[pause] = (SILENCE.opening, SILENCE.rounding, 1.0)
    width = COARTICULATION_S * acoustics.ROWS_PER_S
    kernel = np.exp(-0.5 * (np.arange(-3 * width, 3 * width + 1) / width) ** 2)
    kernel /= kernel.sum()
    return np.stack([np.convolve(out[:, k], kernel, mode="same") for k in range(3)], axis=1)


def roughen(wav: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same speech as a real microphone might have heard it."""
    wav = wav.astype(np.float32) / 32768.0
    if rng.random() < 0.5:  # a room
        rt60 = rng.uniform(0.1, 0.5)
        t = np.arange(int(rt60 * acoustics.SAMPLE_RATE)) / acoustics.SAMPLE_RATE
        ir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60) * 0.3
        ir[0] = 1.0
        wav = np.convolve(wav, ir)[:len(wav)].astype(np.float32)
    if rng.random() < 0.7:  # a tilt: brighter or duller microphones
        a = rng.uniform(-0.6, 0.9)
        wav = np.append(wav[0], wav[1:] - a * wav[:-1]).astype(np.float32)
    if rng.random() < 0.2:  # a telephone band
        from scipy import signal
        sos = signal.butter(4, [300, 3400], "bandpass", fs=acoustics.SAMPLE_RATE, output="sos")
        wav = signal.sosfilt(sos, wav).astype(np.float32)
    rms = float(np.sqrt(np.mean(wav ** 2)) + 1e-9)
    snr_db = rng.uniform(12, 45)
    return wav + rng.standard_normal(len(wav)).astype(np.float32) * rms * 10 ** (-snr_db / 20)


def make_example(speaker: Speaker, voice: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Features and targets of one random espeak-ng utterance, one row per 10 ms."""
    utterance = speaker.say(make_text(VOICES[voice], rng), voice, rate=int(rng.integers(130, 230)),
                            pitch=int(rng.integers(25, 85)))
    return rows(utterance, rng)


def festival_examples(n: int, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Features and targets of `n` random Festival utterances, spread over its voices."""
    voices = list(festival_speech.VOICES)
    out = []
    for k, voice in enumerate(voices):
        count = n // len(voices) + (k < n % len(voices))
        texts = [make_text(festival_speech.VOICES[voice], rng) for _ in range(count)]
        stretch = list(rng.uniform(0.75, 1.35, count))
        out += [rows(u, rng) for u in festival_speech.say_many(texts, voice, stretch)]
        log.info("festival %s: %d utterances", voice, count)
    return out


def rows(utterance: Utterance, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Features of the roughened speech and the targets of its phonemes, one row per 10 ms."""
    wav = utterance.samples
    if utterance.sample_rate != acoustics.SAMPLE_RATE:
        from scipy import signal
        wav = signal.resample_poly(wav.astype(np.float32), acoustics.SAMPLE_RATE, utterance.sample_rate)
    clean = acoustics.log_mel(wav.astype(np.float32) / 32768.0)
    mel = acoustics.log_mel(roughen(wav, rng))
    times = np.arange(len(mel)) / acoustics.ROWS_PER_S
    x = acoustics.context_features(acoustics.normalise(mel), times)
    return x, targets(utterance, len(mel), acoustics.level_db(clean))


def dataset(n: int, seed: int, festival_share: float) -> tuple[np.ndarray, np.ndarray]:
    """`n` utterances, `festival_share` of them from Festival when it is installed."""
    rng = np.random.default_rng(seed)
    speaker = Speaker()
    voices = list(VOICES)
    n_festival = int(round(n * festival_share)) if festival_speech.available() else 0
    if festival_share and not n_festival:
        log.warning("festival is not installed: espeak-ng speech only")
    pairs = [make_example(speaker, voices[k % len(voices)], rng) for k in range(n - n_festival)]
    pairs += festival_examples(n_festival, rng)
    return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])


def train(x: np.ndarray, y: np.ndarray, epochs: int, seed: int) -> ArticulationModel:
    """A tanh hidden layer; opening and rounding by squared error, closure by cross-entropy."""
    import torch
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1] - 1, HIDDEN), torch.nn.Tanh(),
                              torch.nn.Linear(HIDDEN, len(OUTPUTS)))
    opt = torch.optim.Adam(net.parameters(), lr=2e-3, weight_decay=1e-5)
    xt, yt = torch.from_numpy(x[:, :-1]), torch.from_numpy(y)
    for epoch in range(epochs):
        order = torch.randperm(len(xt))
        total = 0.0
        for start in range(0, len(xt), 512):
            idx = order[start:start + 512]
            out = net(xt[idx])
            loss = (torch.nn.functional.mse_loss(torch.sigmoid(out[:, :2]), yt[idx, :2])
                    + 0.2 * torch.nn.functional.binary_cross_entropy_with_logits(out[:, 2], yt[idx, 2]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(idx)
        log.info("epoch %d loss %.4f", epoch + 1, total / len(xt))
    first, second = net[0], net[2]
    return ArticulationModel(
        w1=np.vstack([first.weight.detach().numpy().T, first.bias.detach().numpy()[None]]),
        w2=np.vstack([second.weight.detach().numpy().T, second.bias.detach().numpy()[None]]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=700)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--out", type=Path, default=ArticulationModel.default_path())
    parser.add_argument("--festival", type=float, default=FESTIVAL_SHARE,
                        help="share of the utterances spoken by Festival's voices (when installed)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    x, y = dataset(args.utterances, SEED, args.festival)
    log.info("%d rows (%.0f minutes of speech), %d features", len(x), len(x) / 6000, x.shape[1])
    model = train(x, y, args.epochs, SEED)
    model.save(args.out)
    log.info("wrote %s (%d bytes)", args.out, args.out.stat().st_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
