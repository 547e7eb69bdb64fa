"""Audio decoding, the Wav2Lip mel spectrogram, its windows, and the input checks."""

from __future__ import annotations

import dataclasses

import librosa
import numpy as np
import pytest

from heygem_core.config import get_settings
from heygem_core.errors import ErrorCode, HeyGemError
from heygem_core.media import audio


def reference_mel(wav: np.ndarray) -> np.ndarray:
    """The official hparams/audio.py formula written out with plain numpy."""
    y = np.append(wav[0], wav[1:] - 0.97 * wav[:-1])  # lfilter([1, -0.97], [1], wav)
    y = np.pad(y, 400, mode="reflect")
    n = 1 + (len(y) - 800) // 200
    frames = np.stack([y[i * 200:i * 200 + 800] for i in range(n)])
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(800) / 800)  # periodic Hann
    mag = np.abs(np.fft.rfft(frames * window, axis=1)).T
    basis = librosa.filters.mel(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600)
    s = 20 * np.log10(np.maximum(1e-5, basis @ mag)) - 20
    return np.clip(8 * ((s + 100) / 100) - 4, -4, 4)


def test_mel_matches_official_formula():
    t = np.arange(16000 * 2) / 16000
    rng = np.random.default_rng(0)
    wav = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))
           + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    mel = audio.melspectrogram(wav)
    ref = reference_mel(wav.astype(np.float64))
    assert mel.shape == ref.shape == (80, 161)
    assert np.abs(mel - ref).max() < 1e-4
    assert mel.min() >= -4 and mel.max() <= 4


@pytest.mark.parametrize("fps", [25.0, 30000 / 1001, 30.0])
def test_mel_window_schedule(fps):
    mel = np.arange(80 * 200, dtype=np.float32).reshape(80, 200)
    for i in range(80):
        start = int(i * 80 / fps)
        assert audio.mel_window_start(i, fps) == start
        window = audio.mel_window(mel, i, fps)
        assert window.shape == (80, 16)
        if start + 16 <= 200:
            assert np.array_equal(window, mel[:, start:start + 16])
        else:
            assert np.array_equal(window, mel[:, -16:])


def test_decodes_formats_to_16k_mono(speech_en, tmp_path):
    from make_samples import convert_audio

    clip = audio.load_audio(speech_en)
    assert clip.sample_rate == 16000 and clip.samples.dtype == np.float32 and clip.samples.ndim == 1
    for ext, rate, channels in [("wav", 8000, 1), ("mp3", 48000, 2), ("flac", 44100, 2),
                                ("ogg", 48000, 1), ("m4a", 44100, 2)]:
        converted = convert_audio(speech_en, tmp_path / f"speech.{ext}", rate, channels)
        other = audio.load_audio(converted)
        assert abs(other.duration - clip.duration) < 0.08, ext


def test_audio_track_of_a_video(presenter_clip):
    clip = audio.load_audio(presenter_clip)
    assert clip.duration > 1.0


@pytest.mark.parametrize("name, code", [("silent", ErrorCode.AUDIO_SILENT),
                                        ("short", ErrorCode.AUDIO_TOO_SHORT),
                                        ("empty", ErrorCode.AUDIO_UNREADABLE),
                                        ("text", ErrorCode.AUDIO_UNREADABLE)])
def test_bad_audio(bad_inputs, name, code):
    with pytest.raises(HeyGemError) as err:
        audio.read_audio(bad_inputs[name])
    assert err.value.code is code
    assert err.value.message_zh and err.value.message_en


def test_audio_too_long(speech_en):
    settings = dataclasses.replace(get_settings(), max_audio_seconds=1.0)
    with pytest.raises(HeyGemError) as err:
        audio.read_audio(speech_en, settings)
    assert err.value.code is ErrorCode.AUDIO_TOO_LONG
