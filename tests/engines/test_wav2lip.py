"""The Wav2Lip engine: official architecture and checkpoint format, bad checkpoints, batching,
end-to-end rendering on CPU with a randomly initialised network, and engine selection."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import make_samples
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from heygem_core.config import PROJECT_ROOT, Settings, get_settings  # noqa: E402
from heygem_core.engines import FrameJob, create_engine, resolve_engine_name  # noqa: E402
from heygem_core.engines.wav2lip.engine import MASK, BoxSmoother, Wav2LipEngine  # noqa: E402
from heygem_core.engines.wav2lip.model import Wav2Lip, load_model, save_checkpoint  # noqa: E402
from heygem_core.errors import ErrorCode, HeyGemError  # noqa: E402
from heygem_core.face import FaceTracker  # noqa: E402
from heygem_core.media import audio  # noqa: E402
from heygem_core.media.probe import probe_video  # noqa: E402
from heygem_core.media.reader import iter_frames  # noqa: E402
from heygem_core.pipeline import render  # noqa: E402

# --- the official definition (models/conv.py, models/wav2lip.py), written out by hand ----------
# (module path, kind, cin, cout, kernel): "c" = Conv2d block, "t" = Conv2dTranspose block
R = "c"  # a residual block is a Conv2d block with cin == cout, k3


def _blocks(prefix: str, layers: list[tuple[str, int, int, int]]) -> list[tuple[str, str, int, int, int]]:
    return [(f"{prefix}.{i}", kind, cin, cout, k) for i, (kind, cin, cout, k) in enumerate(layers)]


OFFICIAL_BLOCKS = (
    _blocks("face_encoder_blocks.0", [("c", 6, 16, 7)])
    + _blocks("face_encoder_blocks.1", [("c", 16, 32, 3), (R, 32, 32, 3), (R, 32, 32, 3)])
    + _blocks("face_encoder_blocks.2", [("c", 32, 64, 3)] + [(R, 64, 64, 3)] * 3)
    + _blocks("face_encoder_blocks.3", [("c", 64, 128, 3)] + [(R, 128, 128, 3)] * 2)
    + _blocks("face_encoder_blocks.4", [("c", 128, 256, 3)] + [(R, 256, 256, 3)] * 2)
    + _blocks("face_encoder_blocks.5", [("c", 256, 512, 3), (R, 512, 512, 3)])
    + _blocks("face_encoder_blocks.6", [("c", 512, 512, 3), ("c", 512, 512, 1)])
    + _blocks("audio_encoder", [("c", 1, 32, 3), (R, 32, 32, 3), (R, 32, 32, 3),
                                ("c", 32, 64, 3), (R, 64, 64, 3), (R, 64, 64, 3),
                                ("c", 64, 128, 3), (R, 128, 128, 3), (R, 128, 128, 3),
                                ("c", 128, 256, 3), (R, 256, 256, 3),
                                ("c", 256, 512, 3), ("c", 512, 512, 1)])
    + _blocks("face_decoder_blocks.0", [("c", 512, 512, 1)])
    + _blocks("face_decoder_blocks.1", [("t", 1024, 512, 3), (R, 512, 512, 3)])
    + _blocks("face_decoder_blocks.2", [("t", 1024, 512, 3)] + [(R, 512, 512, 3)] * 2)
    + _blocks("face_decoder_blocks.3", [("t", 768, 384, 3)] + [(R, 384, 384, 3)] * 2)
    + _blocks("face_decoder_blocks.4", [("t", 512, 256, 3)] + [(R, 256, 256, 3)] * 2)
    + _blocks("face_decoder_blocks.5", [("t", 320, 128, 3)] + [(R, 128, 128, 3)] * 2)
    + _blocks("face_decoder_blocks.6", [("t", 160, 64, 3)] + [(R, 64, 64, 3)] * 2)
    + [("output_block.0", "c", 80, 32, 3)]
)


def official_state_shapes() -> dict[str, tuple[int, ...]]:
    """Every state-dict key of the official generator with its shape."""
    shapes: dict[str, tuple[int, ...]] = {}
    for path, kind, cin, cout, k in OFFICIAL_BLOCKS:
        conv = f"{path}.conv_block.0"
        bn = f"{path}.conv_block.1"
        shapes[f"{conv}.weight"] = (cout, cin, k, k) if kind == "c" else (cin, cout, k, k)
        shapes[f"{conv}.bias"] = (cout,)
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{bn}.{name}"] = (cout,)
        shapes[f"{bn}.num_batches_tracked"] = ()
    shapes["output_block.1.weight"] = (3, 32, 1, 1)
    shapes["output_block.1.bias"] = (3,)
    return shapes


def official_parameter_count() -> int:
    return sum(int(np.prod(s)) for k, s in official_state_shapes().items()
               if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))


# --- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised generator saved exactly like the official files."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("checkpoints")
    return save_checkpoint(Wav2Lip(), folder / "wav2lip_gan.pth")


def _settings(checkpoints: Path, **changes: object) -> Settings:
    return dataclasses.replace(get_settings(), checkpoints_dir=checkpoints, device="cpu", **changes)


@pytest.fixture(scope="module")
def short_speech(samples_dir: Path, speech_en: Path) -> Path:
    out = samples_dir / "speech_en_2s.wav"
    if not out.exists():
        make_samples.run_ffmpeg(["-i", str(speech_en), "-t", "2", "-ac", "1", "-ar", "16000", str(out)])
    return out


@pytest.fixture(scope="module")
def tracked_frames(presenter_clip: Path) -> list[FrameJob]:
    """The first 8 frames of the presenter clip with their tracked faces."""
    jobs = []
    with FaceTracker(fps=25) as tracker:
        for i, frame in enumerate(iter_frames(probe_video(presenter_clip))):
            jobs.append(FrameJob(i, frame, tracker.track(frame)))
            if len(jobs) == 8:
                break
    assert all(job.face is not None for job in jobs)
    return jobs


# --- architecture and checkpoints ---------------------------------------------------------------

def test_state_dict_matches_the_official_architecture():
    model = Wav2Lip()
    expected = official_state_shapes()
    actual = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert len(expected) == 352
    assert actual == expected
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == official_parameter_count()
    assert 36.2e6 < n_params < 36.4e6


def test_official_format_loads_strictly(random_checkpoint):
    data = torch.load(random_checkpoint, weights_only=True)
    assert all(k.startswith("module.") for k in data["state_dict"])
    model = load_model(random_checkpoint)
    assert not model.training
    torch.manual_seed(0)
    reference = Wav2Lip().state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(value, reference[key]), key


def _broken(tmp_path: Path, source: Path, how: str) -> Path:
    path = tmp_path / "wav2lip.pth"
    if how == "truncated":
        path.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
        return path
    data = torch.load(source, weights_only=True)
    state = data["state_dict"]
    if how == "missing_key":
        del state["module.face_decoder_blocks.3.1.conv_block.1.running_var"]
    elif how == "wrong_shape":
        state["module.output_block.1.weight"] = torch.zeros(3, 64, 1, 1)
    elif how == "not_a_checkpoint":
        data = {"state_dict": "nothing here"}
    torch.save(data, path)
    return path


@pytest.mark.parametrize("how, words", [("missing_key", "missing"), ("wrong_shape", "wrong shape"),
                                        ("truncated", "not a readable"), ("not_a_checkpoint", "no state_dict")])
def test_bad_checkpoints_give_checkpoint_invalid(tmp_path, random_checkpoint, how, words):
    path = _broken(tmp_path, random_checkpoint, how)
    with pytest.raises(HeyGemError) as info:
        create_engine("wav2lip", _settings(tmp_path))
    assert info.value.code is ErrorCode.CHECKPOINT_INVALID
    assert path.name in info.value.detail and words in info.value.detail
    assert "352 state-dict entries" in info.value.detail


def test_missing_file_gives_checkpoint_invalid(tmp_path):
    with pytest.raises(HeyGemError) as info:
        load_model(tmp_path / "wav2lip.pth")
    assert info.value.code is ErrorCode.CHECKPOINT_INVALID and "wav2lip.pth" in info.value.detail


# --- inference ----------------------------------------------------------------------------------

def test_batch_of_four_equals_four_batches_of_one():
    torch.manual_seed(1234)
    model = Wav2Lip().eval()
    faces = torch.rand(4, 6, 96, 96)
    mels = torch.randn(4, 1, 80, 16)
    with torch.inference_mode():
        together = model(mels, faces)
        alone = torch.cat([model(mels[i:i + 1], faces[i:i + 1]) for i in range(4)])
    assert together.shape == (4, 3, 96, 96)
    assert float((together - alone).abs().max()) <= 1e-5


def test_engine_output_does_not_depend_on_the_batch(random_checkpoint, tracked_frames, short_speech):
    settings = _settings(random_checkpoint.parent, wav2lip_precision="fp32")
    engine = create_engine("wav2lip", settings)
    clip = audio.load_audio(short_speech)

    def run(size: int) -> list[np.ndarray]:
        engine.start(clip, 25.0, len(tracked_frames))
        jobs = [dataclasses.replace(j, image=j.image.copy()) for j in tracked_frames]
        return [f for i in range(0, len(jobs), size) for f in engine.render_batch(jobs[i:i + size])]

    by_four, by_one = run(4), run(1)
    for a, b, src in zip(by_four, by_one, tracked_frames):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # float rounding to uint8 at most
        assert not np.array_equal(a, src.image)  # the mouth was re-rendered


def test_faceless_frames_pass_through_and_edits_stay_in_the_lower_face(random_checkpoint, tracked_frames,
                                                                       short_speech):
    engine = create_engine("wav2lip", _settings(random_checkpoint.parent))
    engine.start(audio.load_audio(short_speech), 25.0, 8)
    job = tracked_frames[0]
    blank = np.full((360, 640, 3), 77, np.uint8)
    out = engine.render_batch([FrameJob(0, blank.copy(), None), FrameJob(1, job.image.copy(), job.face)])
    assert np.array_equal(out[0], blank)
    changed = np.argwhere(np.abs(out[1].astype(int) - job.image.astype(int)).max(axis=2) > 0)
    x0, y0, x1, y1 = job.face.box
    assert changed[:, 0].min() >= y0 + 0.4 * (y1 - y0)  # nothing above the nose moves
    assert changed[:, 1].min() >= x0 and changed[:, 1].max() < x1


def test_paste_mask_is_soft_and_zero_at_the_crop_border():
    assert MASK.max() == pytest.approx(1.0, abs=1e-3)
    border = np.concatenate([MASK[0], MASK[-1], MASK[:, 0], MASK[:, -1]])
    assert border.max() < 0.02
    assert ((MASK > 0.05) & (MASK < 0.95)).sum() > 300  # a feathered edge, not a hard step
    assert MASK[:40].max() < 0.01  # the upper face is never pasted


def test_box_smoothing_follows_a_moving_head_without_lag():
    smoother = BoxSmoother(5)
    for t in range(10):
        box = smoother.push(np.array([100 + 3 * t, 50, 200 + 3 * t, 170], float))
    np.testing.assert_allclose(box, [127, 50, 227, 170], atol=1e-9)
    smoother.reset()
    rng = np.random.default_rng(0)
    raw = [np.array([100, 50, 200, 170], float) + rng.normal(0, 2, 4) for _ in range(200)]
    smoothed = np.array([smoother.push(b) for b in raw])
    assert smoothed[5:].std(axis=0).mean() < 0.8 * np.array(raw)[5:].std(axis=0).mean()


def test_renders_a_two_second_clip_end_to_end_on_cpu(random_checkpoint, presenter_clip, short_speech,
                                                     tmp_path):
    out = tmp_path / "wav2lip.mp4"
    result = render(presenter_clip, short_speech, out, "wav2lip",
                    settings=_settings(random_checkpoint.parent, workspace=tmp_path))
    assert result.engine == "wav2lip" and result.n_frames == 50
    info = probe_video(out)
    speech = audio.load_audio(short_speech).duration
    assert abs(info.duration - speech) <= 1 / info.fps + 0.05
    assert abs(audio.load_audio(out).duration - speech) < 0.1


# --- selection ----------------------------------------------------------------------------------

def test_auto_prefers_wav2lip_when_a_checkpoint_is_present(random_checkpoint, tmp_path):
    assert resolve_engine_name("auto", _settings(random_checkpoint.parent)) == "wav2lip"
    assert resolve_engine_name("auto", _settings(tmp_path)) == "builtin"
    status = Wav2LipEngine.status(_settings(tmp_path))
    assert not status.available and "wav2lip_gan.pth" in status.reason
    with pytest.raises(HeyGemError) as info:
        resolve_engine_name("wav2lip", _settings(tmp_path))
    assert info.value.code is ErrorCode.ENGINE_UNAVAILABLE


def test_engines_command_says_why_wav2lip_is_unavailable(tmp_path):
    env = {**os.environ, "HEYGEM_CHECKPOINTS": str(tmp_path), "HEYGEM_WORKSPACE": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "heygem_core", "engines"], capture_output=True, text=True,
                          env=env, cwd=PROJECT_ROOT, timeout=120, check=True)
    line = next(li for li in proc.stdout.splitlines() if "wav2lip" in li.split()[1])
    assert line.startswith("✗") and "no checkpoint" in line
    assert any(li.startswith("✓") and "builtin" in li for li in proc.stdout.splitlines())


# --- CUDA ---------------------------------------------------------------------------------------

@pytest.mark.requires_cuda
def test_cuda_fp16_matches_cpu(random_checkpoint, tracked_frames, short_speech):
    clip = audio.load_audio(short_speech)
    outputs = []
    for device, precision in (("cpu", "fp32"), ("cuda:0", "fp16")):
        engine = create_engine("wav2lip", dataclasses.replace(
            _settings(random_checkpoint.parent, wav2lip_precision=precision), device=device))
        assert engine.device.type == device[:4]
        engine.start(clip, 25.0, len(tracked_frames))
        jobs = [dataclasses.replace(j, image=j.image.copy()) for j in tracked_frames]
        outputs.append(engine.render_batch(jobs))
    for cpu, cuda in zip(*outputs):
        assert np.abs(cpu.astype(int) - cuda.astype(int)).max() <= 3
