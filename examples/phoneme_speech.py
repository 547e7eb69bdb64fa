"""Speech with a known phoneme schedule: espeak-ng (libespeak-ng, through ctypes) speaks a text
and reports when each phoneme starts. Used to make test fixtures whose vowels, stops and silences
are known, and to train the built-in engine's articulation model (`scripts/train_articulation.py`).

    python examples/phoneme_speech.py "Hello, my name is Bob." out.wav
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SYNCHRONOUS = 0x02  # AUDIO_OUTPUT_SYNCHRONOUS: samples come to the callback, no sound device
PHONEME_EVENTS = 0x0001  # espeakINITIALIZE_PHONEME_EVENTS
PHONEME_IPA = 0x0002  # espeakINITIALIZE_PHONEME_IPA: the events name phonemes in IPA
EVENT_PHONEME = 7
EVENT_END = 5
RATE, PITCH, RANGE = 1, 3, 4  # espeak_PARAMETER
CHARS_UTF8 = 1
POS_CHARACTER = 1


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Phone:
    """One phoneme: its IPA symbol and when it starts and ends, in seconds."""

    symbol: str
    start: float
    end: float


@dataclass(frozen=True)
class Utterance:
    """Synthesised speech and its phoneme schedule."""

    samples: np.ndarray  # int16 mono
    sample_rate: int
    phones: list[Phone]

    def write_wav(self, path: str | Path) -> Path:
        path = Path(path)
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(self.sample_rate)
            w.writeframes(self.samples.astype("<i2").tobytes())
        return path


class Speaker:
    """libespeak-ng, loaded once per process (it keeps global state)."""

    _lib: ctypes.CDLL | None = None
    _rate = 0

    def __init__(self) -> None:
        if Speaker._lib is None:
            name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
            lib = ctypes.CDLL(name)
            Speaker._rate = lib.espeak_Initialize(SYNCHRONOUS, 0, None, PHONEME_EVENTS | PHONEME_IPA)
            if Speaker._rate <= 0:
                raise RuntimeError("espeak-ng could not initialise")
            Speaker._lib = lib
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, str]] = []
        self._callback = _CALLBACK(self._collect)  # kept alive while espeak may call it

    def say(self, text: str, voice: str = "en-us", rate: int = 165, pitch: int = 50) -> Utterance:
        """Speak `text` with `voice` (an espeak-ng voice name, e.g. en-us, cmn-latn-pinyin, en-us+f3)."""
        lib = Speaker._lib
        assert lib is not None
        self._chunks, self._events = [], []
        lib.espeak_SetSynthCallback(self._callback)
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        lib.espeak_SetParameter(RATE, rate, 0)
        lib.espeak_SetParameter(PITCH, pitch, 0)
        data = text.encode("utf-8") + b"\0"
        lib.espeak_Synth(data, len(data), 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
        lib.espeak_Synchronize()
        samples = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return Utterance(samples, Speaker._rate, _phones(self._events, len(samples), Speaker._rate))

    def _collect(self, wav: ctypes.POINTER(ctypes.c_short), n: int, events: ctypes.POINTER(_Event)) -> int:
        offset = sum(len(c) for c in self._chunks)
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        k = 0
        while events[k].type != 0:  # espeakEVENT_LIST_TERMINATED
            event = events[k]
            if event.type == EVENT_PHONEME:
                self._events.append((event.sample if event.sample else offset,
                                     event.id.decode("utf-8", "replace")))
            k += 1
        return 0


def _phones(events: list[tuple[int, str]], n_samples: int, rate: int) -> list[Phone]:
    """Phoneme start times from the events; each ends where the next begins."""
    starts = [(sample / rate, symbol) for sample, symbol in events if symbol.strip()]
    phones = []
    for k, (start, symbol) in enumerate(starts):
        end = starts[k + 1][0] if k + 1 < len(starts) else n_samples / rate
        if end > start:
            phones.append(Phone(symbol.strip(), start, end))
    return phones


def main(argv: list[str]) -> int:
    text, out = argv[1], argv[2]
    voice = argv[3] if len(argv) > 3 else "en-us"
    write_and_list(Speaker().say(text, voice), out)
    return 0


def write_and_list(utterance: Utterance, out: str | Path) -> None:
    """Write the speech to `out` and its phoneme schedule to stdout, a line per phone."""
    utterance.write_wav(out)
    for phone in utterance.phones:
        sys.stdout.write(f"{phone.start:7.3f} {phone.end:7.3f} {phone.symbol}\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
