"""What each speech sound does to the mouth: the articulation model's training targets.

A phoneme (IPA, as espeak-ng names it) gives an `opening` in [0, 1] (0 lips together, 1 a wide
'ah', set by vowel height), a `rounding` in [0, 1] (1 a rounded 'oo' or 'w') and whether the lips
close (/p b m/). The first vowel letter of a diphthong decides it: the mouth starts there."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Viseme:
    """The mouth shape of one sound."""

    opening: float
    rounding: float = 0.0
    closed: bool = False


SILENCE = Viseme(0.0, 0.0, closed=True)
VOWELS = {  # by height: open vowels drop the jaw furthest
    "a": Viseme(0.95), "ɑ": Viseme(0.95), "æ": Viseme(0.85), "ɐ": Viseme(0.75), "ɒ": Viseme(0.85, 0.4),
    "ɛ": Viseme(0.65), "ʌ": Viseme(0.65), "ɜ": Viseme(0.55), "œ": Viseme(0.6, 0.6), "ɔ": Viseme(0.7, 0.6),
    "e": Viseme(0.5), "ə": Viseme(0.45), "ɘ": Viseme(0.45), "ø": Viseme(0.45, 0.8), "o": Viseme(0.5, 0.85),
    "ɤ": Viseme(0.45), "ɵ": Viseme(0.45, 0.6), "ɚ": Viseme(0.45, 0.2),
    "ɪ": Viseme(0.35), "ʊ": Viseme(0.3, 0.8), "ʏ": Viseme(0.3, 0.8), "ɨ": Viseme(0.28),
    "i": Viseme(0.25), "y": Viseme(0.22, 0.9), "u": Viseme(0.22, 1.0), "ɯ": Viseme(0.25), "ʉ": Viseme(0.22, 0.9),
}
CONSONANTS = {
    "p": Viseme(0.0, closed=True), "b": Viseme(0.0, closed=True), "m": Viseme(0.0, closed=True),
    "ɸ": Viseme(0.05), "β": Viseme(0.05),
    "f": Viseme(0.08), "v": Viseme(0.08), "ʋ": Viseme(0.1),  # lower lip to the upper teeth
    "w": Viseme(0.12, 1.0), "ɥ": Viseme(0.12, 0.9),
    "ʃ": Viseme(0.15, 0.5), "ʒ": Viseme(0.15, 0.5), "ɕ": Viseme(0.15, 0.3), "ʑ": Viseme(0.15, 0.3),
    "s": Viseme(0.12), "z": Viseme(0.12), "θ": Viseme(0.15), "ð": Viseme(0.15),
    "t": Viseme(0.18), "d": Viseme(0.18), "n": Viseme(0.18), "l": Viseme(0.25), "ɹ": Viseme(0.2, 0.4),
    "r": Viseme(0.25), "ɾ": Viseme(0.25), "ʂ": Viseme(0.15, 0.3), "ʐ": Viseme(0.15, 0.3),
    "j": Viseme(0.2), "ç": Viseme(0.2), "k": Viseme(0.3), "g": Viseme(0.3), "ɡ": Viseme(0.3),
    "ŋ": Viseme(0.28), "x": Viseme(0.3), "χ": Viseme(0.35), "h": Viseme(0.4), "ɣ": Viseme(0.3),
    "ʔ": Viseme(0.2), "ɲ": Viseme(0.2), "ʎ": Viseme(0.22), "ɫ": Viseme(0.25),
}
FALLBACK = Viseme(0.25)  # a sound not in the tables: a neutral consonant


def viseme(symbol: str) -> Viseme:
    """The mouth shape of an IPA phoneme symbol (as espeak-ng names it; may carry length and
    tone marks). A vowel anywhere in it wins over a consonant (t͡s, s. stay consonants)."""
    symbol = symbol.strip()
    if not symbol or symbol in {"_", "||", "|"}:
        return SILENCE
    for char in symbol:
        if char in VOWELS:
            return VOWELS[char]
    for char in symbol:
        if char in CONSONANTS:
            return CONSONANTS[char]
    return FALLBACK
