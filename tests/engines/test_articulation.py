"""The built-in engine's articulation follows the sounds, not the loudness: checked on speech
whose phoneme schedule espeak-ng reports, and its mouth library picks matching source mouths."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from heygem_core.engines.builtin.articulation import LEAD_S, articulate
from heygem_core.engines.builtin.visemes import viseme
from heygem_core.media.audio import AudioClip

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
FPS = 25.0


@pytest.fixture(scope="module")
def speaker():
    from phoneme_speech import Speaker
    return Speaker()


def clip_of(utterance, gain: float = 1.0) -> AudioClip:
    return AudioClip(utterance.samples.astype(np.float32) / 32768.0 * gain, utterance.sample_rate)


def frames_of_phones(utterance, predicate, n: int) -> np.ndarray:
    """Frames whose shown moment (time + lead) falls in the middle of a phone matching `predicate`."""
    times = (np.arange(n) + 0.5) / FPS + LEAD_S
    hit = np.zeros(n, bool)
    for phone in utterance.phones:
        if predicate(phone.symbol) and phone.end - phone.start > 0.05:
            lo, hi = phone.start + 0.2 * (phone.end - phone.start), phone.end - 0.2 * (phone.end - phone.start)
            hit |= (times >= lo) & (times < hi)
    return hit


def track_of(utterance, gain: float = 1.0):
    clip = clip_of(utterance, gain)
    n = int(clip.duration * FPS)
    return articulate(clip, FPS, n), n


def test_open_vowels_open_and_bilabials_close(speaker):
    utterance = speaker.say("Papa bought a map. Bob, mama? Father saw a big bomb.", "en-us", rate=140)
    track, n = track_of(utterance)
    is_open = frames_of_phones(utterance, lambda s: viseme(s).opening >= 0.75, n)
    is_shut = frames_of_phones(utterance, lambda s: viseme(s).closed, n)
    assert is_open.sum() >= 5 and is_shut.sum() >= 3
    assert np.median(track.opening[is_open]) > 0.5
    assert np.median(track.opening[is_shut]) < 0.25
    assert np.median(track.opening[is_open]) > np.median(track.opening[is_shut]) + 0.35


def test_silence_closes_the_mouth(speaker):
    words = speaker.say("Hello there.", "en-us")
    pause = np.zeros(words.sample_rate, np.int16)  # one second of nothing between two phrases
    samples = np.concatenate([words.samples, pause, words.samples])
    track = articulate(AudioClip(samples.astype(np.float32) / 32768.0, words.sample_rate), FPS,
                       int(len(samples) / words.sample_rate * FPS))
    start = len(words.samples) / words.sample_rate
    quiet = slice(int((start + 0.25) * FPS), int((start + 0.75) * FPS))  # inside the pause, past the lead
    assert track.opening[quiet].max() < 0.05
    assert track.closed[quiet].all()


def test_loudness_does_not_drive_the_opening(speaker):
    """The same words 20 dB quieter inside one recording open the mouth about as much."""
    utterance = speaker.say("Papa bought a map for father.", "en-us", rate=140)
    x = utterance.samples.astype(np.float32) / 32768.0
    mixed = np.concatenate([x, np.zeros(utterance.sample_rate // 2, np.float32), 0.1 * x])
    n = int(len(mixed) / utterance.sample_rate * FPS)
    track = articulate(AudioClip(mixed, utterance.sample_rate), FPS, n)
    first = int(len(x) / utterance.sample_rate * FPS)
    second = int((len(x) + utterance.sample_rate // 2) / utterance.sample_rate * FPS)
    loud, quiet = track.opening[:first], track.opening[second:second + first]
    k = min(len(loud), len(quiet))
    assert abs(float(loud.mean()) - float(quiet[:k].mean())) < 0.12
    assert np.corrcoef(loud[:k], quiet[:k])[0, 1] > 0.7


def test_the_mouth_leads_the_sound(speaker):
    """The mouth starts opening for the first vowel before the vowel is heard."""
    utterance = speaker.say("Ah.", "en-us")
    pad = np.zeros(utterance.sample_rate // 2, np.int16)
    samples = np.concatenate([pad, utterance.samples])
    clip = AudioClip(samples.astype(np.float32) / 32768.0, utterance.sample_rate)
    track = articulate(clip, FPS, int(clip.duration * FPS))
    vowel = next(p for p in utterance.phones if viseme(p.symbol).opening > 0.7)
    onset = 0.5 + vowel.start
    level = np.abs(samples.astype(np.float32))
    heard = np.argmax(level > 0.05 * level.max()) / utterance.sample_rate
    first_open = np.argmax(track.opening > 0.2) / FPS
    assert first_open < min(onset, heard)


def test_rounded_vowels_round(speaker):
    utterance = speaker.say("Who knew you two would do it too? We see three sheep eat.", "en-us", rate=140)
    track, n = track_of(utterance)
    rounded = frames_of_phones(utterance, lambda s: viseme(s).rounding >= 0.8, n)
    spread = frames_of_phones(utterance, lambda s: s.startswith("i"), n)
    assert rounded.sum() >= 3 and spread.sum() >= 3
    assert np.median(track.rounding[rounded]) > np.median(track.rounding[spread]) + 0.15


def test_festival_phones_become_the_ipa_the_visemes_read():
    """Festival's phone sets (ARPAbet, msu_ru's doubled letters, Catalan's stress digits) map onto
    symbols with the right mouth: closed lips, round or open vowels, pauses."""
    from festival_speech import ipa

    english, russian, catalan = "voice_cmu_us_slt_arctic_hts", "voice_msu_ru_nsh_clunits", "voice_upc_ca_ona_hts"
    assert [viseme(ipa(p, english)).closed for p in ("m", "b", "aa", "pau")] == [True, True, False, True]
    assert viseme(ipa("uw", english)).rounding > 0.8 > viseme(ipa("iy", english)).rounding
    assert viseme(ipa("aa", english)).opening > viseme(ipa("iy", english)).opening
    assert ipa("vv", russian) == "v" and viseme(ipa("yy", russian)).opening < viseme(ipa("aa", russian)).opening
    assert ipa("O1", catalan) == "ɔ" and viseme(ipa("ax", catalan)).opening == viseme("ə").opening
