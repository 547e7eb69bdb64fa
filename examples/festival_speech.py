"""Speech with a known phoneme schedule from Festival (Debian's `festival` and its `festvox-*`
voices): the diphone, unit-selection and HTS voices are made from recordings of real speakers,
so their spectra are much nearer a microphone's than espeak-ng's formant synthesis. Used beside
`phoneme_speech.py` to train the built-in engine's articulation model.

    apt-get install festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts festvox-ru festvox-ca-ona-hts
    python examples/festival_speech.py voice_cmu_us_slt_arctic_hts "Hello, my name is Bob." out.wav

Festival names its phones in each voice's own phone set (ARPAbet for English, Latin letters for
Russian and Catalan); `ipa()` turns them into the IPA symbols `visemes.viseme` reads.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np

from phoneme_speech import Phone, Utterance, write_and_list

# voices whose licences allow any use (CSTR/CMU free licence, EST/BSD, BSD-like, LGPL), and the
# kind of text each gets
VOICES = {"voice_kal_diphone": "english", "voice_ked_diphone": "english",
          "voice_cmu_us_slt_arctic_hts": "english", "voice_msu_ru_nsh_clunits": "cyrillic",
          "voice_upc_ca_ona_hts": "syllables"}
PAUSES = {"pau", "h#", "brth", "#", "_"}
ARPABET = {
    "aa": "ɑ", "ae": "æ", "ah": "ʌ", "ao": "ɔ", "aw": "a", "ax": "ə", "axr": "ɚ", "ay": "a",
    "eh": "ɛ", "er": "ɜ", "ey": "e", "ih": "ɪ", "iy": "i", "ow": "o", "oy": "ɔ", "uh": "ʊ",
    "uw": "u", "b": "b", "ch": "ʃ", "d": "d", "dh": "ð", "el": "l", "em": "m", "en": "n",
    "f": "f", "g": "ɡ", "hh": "h", "jh": "ʒ", "k": "k", "l": "l", "m": "m", "n": "n", "ng": "ŋ",
    "p": "p", "r": "ɹ", "s": "s", "sh": "ʃ", "t": "t", "th": "θ", "v": "v", "w": "w", "y": "j",
    "z": "z", "zh": "ʒ", "dx": "ɾ",
}
SAMPA = {  # Russian (msu_ru) and Catalan (upc_ca) letters that are not IPA already
    "ee": "e", "yy": "ɨ", "aa": "a", "oo": "o", "uu": "u", "ii": "i", "ax": "ə", "E": "ɛ",
    "O": "ɔ", "sh": "ʃ", "sch": "ʃ", "zh": "ʒ", "ch": "ʃ", "c": "s", "ts": "s", "tj": "t",
    "S": "ʃ", "Z": "ʒ", "J": "ɲ", "L": "ʎ", "rr": "r", "jj": "j", "y": "j", "x": "x", "B": "β",
    "D": "ð", "G": "ɣ", "dZ": "ʒ", "tS": "ʃ", "uw": "u", "w": "w",
}


def available() -> bool:
    """Whether Festival is installed (its voices are checked when used)."""
    return shutil.which("festival") is not None


def ipa(phone: str, voice: str) -> str:
    """The IPA symbol of one of `voice`'s phones ('_' for a pause)."""
    if phone in PAUSES:
        return "_"
    if "cmu_us" in voice or voice in {"voice_kal_diphone", "voice_ked_diphone"}:
        return ARPABET.get(phone, phone)
    bare = phone.rstrip("0123456789")
    if bare in SAMPA:
        return SAMPA[bare]
    if len(bare) == 2 and bare[0] == bare[1]:  # msu_ru doubles a palatalised consonant
        return bare[0]
    return bare


def say_many(texts: list[str], voice: str, stretch: list[float]) -> list[Utterance]:
    """Speak each text with one Festival process; `stretch` slows (>1) or speeds each up."""
    with tempfile.TemporaryDirectory(prefix="festival-") as tmp:
        folder = Path(tmp)
        script = [f"({voice})"]
        for k, (text, factor) in enumerate(zip(texts, stretch)):
            quoted = text.replace("\\", " ").replace('"', " ")
            script += [f"(Parameter.set 'Duration_Stretch {factor:.3f})",
                       f'(set! utt (SynthText "{quoted}"))',
                       f'(utt.save.wave utt "{folder}/{k}.wav" \'riff)',
                       f'(utt.save.segs utt "{folder}/{k}.segs")']
        (folder / "run.scm").write_text("\n".join(script) + "\n", encoding="utf-8")
        subprocess.run(["festival", "-b", str(folder / "run.scm")], check=True, capture_output=True,
                       timeout=60 + 10 * len(texts))
        return [_read(folder / f"{k}.wav", folder / f"{k}.segs", voice) for k in range(len(texts))
                if (folder / f"{k}.segs").exists()]


def _read(wav_path: Path, segs_path: Path, voice: str) -> Utterance:
    with wave.open(str(wav_path)) as w:
        rate = w.getframerate()
        samples = np.frombuffer(w.readframes(w.getnframes()), "<i2")
        if w.getnchannels() > 1:
            samples = samples.reshape(-1, w.getnchannels())[:, 0]
    phones, start = [], 0.0
    for line in segs_path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split()
        if len(parts) != 3 or parts[0] == "#":
            continue
        end = float(parts[0])
        if end > start:
            phones.append(Phone(ipa(parts[2], voice), start, end))
        start = end
    return Utterance(samples.copy(), rate, phones)


def main(argv: list[str]) -> int:
    voice, text, out = argv[1], argv[2], argv[3]
    write_and_list(say_many([text], voice, [1.0])[0], out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
