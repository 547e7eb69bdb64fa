"""`python -m heygem_core bench`: speed per stage and peak memory of every available engine.

Each render runs in a fresh process so its peak RSS is its own. Inputs are generated (the
astronaut presenter of examples/make_samples.py and espeak-ng speech), never downloaded. Without
an installed checkpoint, Wav2Lip is measured with a randomly initialised network saved in the
official format: the same compute as the real weights."""

from __future__ import annotations

import importlib.util
import logging
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from types import ModuleType

from heygem_core.config import PROJECT_ROOT, get_settings
from heygem_core.engines import engine_statuses

logger = logging.getLogger(__name__)

STAGES = ("decode", "track", "audio", "render", "encode")
SPEECH_TEXT = ("Good morning everyone. Today we will talk about the water cycle. "
               "Water evaporates from the sea, rises into the sky and forms clouds. "
               "When the clouds cool down, it falls again as rain or snow. ")


@dataclass(frozen=True)
class BenchRow:
    """One measured render."""

    engine: str
    clip: str
    frames: int
    seconds: float  # output duration
    wall: float  # seconds end to end
    stage_ms: dict[str, float]  # per frame
    peak_rss_mb: float
    model_ms: float = 0.0  # per frame spent in the network's forward pass (wav2lip), part of render

    @property
    def model_share(self) -> float:
        """The network's share of the wall time."""
        return self.model_ms * self.frames / 1000 / self.wall

    @property
    def fps(self) -> float:
        return self.frames / self.wall

    @property
    def realtime(self) -> float:
        """Output seconds made per second of work (2.0 = twice real time)."""
        return self.seconds / self.wall


def _samples() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_samples", PROJECT_ROOT / "examples" / "make_samples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_inputs(workdir: Path, seconds: float, width: int, height: int) -> tuple[Path, Path]:
    """A presenter clip of `seconds` at width x height and speech of the same length."""
    samples = _samples()
    video = samples.make_presenter_clip(workdir / f"presenter_{height}p_{seconds:.0f}s.mp4",
                                        width=width, height=height, seconds=seconds)
    speech = samples.make_speech(workdir / "speech_once.wav", SPEECH_TEXT)
    looped = workdir / f"speech_{seconds:.0f}s.wav"
    samples.run_ffmpeg(["-y", "-stream_loop", "-1", "-i", str(speech), "-t", f"{seconds:.3f}",
                        "-ac", "1", "-ar", "16000", str(looped)])
    return video, looped


def _render_in_child(video: str, audio: str, out: str, engine: str, checkpoints: str | None
                     ) -> tuple[dict[str, float], int, float, int]:
    import dataclasses

    from heygem_core.engines import create_engine
    from heygem_core.pipeline import render

    settings = get_settings()
    if checkpoints:
        settings = dataclasses.replace(settings, checkpoints_dir=Path(checkpoints))
    t0 = time.perf_counter()
    lip_engine = create_engine(engine, settings)
    model_s = _time_forward(lip_engine)
    result = render(video, audio, out, lip_engine, settings=settings)
    wall = time.perf_counter() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {**result.timings, "model": model_s[0]}, result.n_frames, wall, peak_kb


def _time_forward(engine: object) -> list[float]:
    """Wrap an engine's `predict` (the network's forward pass) to add its seconds up."""
    spent = [0.0]
    predict = getattr(engine, "predict", None)
    if predict is None:
        return spent

    def timed(*args: object) -> object:
        t = time.perf_counter()
        try:
            return predict(*args)
        finally:
            spent[0] += time.perf_counter() - t

    engine.predict = timed  # type: ignore[attr-defined]
    return spent


def measure(engine: str, video: Path, audio: Path, label: str, workdir: Path,
            checkpoints: Path | None = None) -> BenchRow:
    """Render once in a fresh process and collect stage times and peak RSS."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        timings, frames, wall, peak_kb = pool.submit(
            _render_in_child, str(video), str(audio), str(workdir / f"out_{engine}_{label}.mp4"), engine,
            str(checkpoints) if checkpoints else None).result()
    stage_ms = {s: 1000 * timings.get(s, 0.0) / frames for s in STAGES}
    return BenchRow(engine, label, frames, frames / _fps(video), wall, stage_ms, peak_kb / 1024,
                    model_ms=1000 * timings.get("model", 0.0) / frames)


def random_wav2lip_checkpoints(workdir: Path) -> Path | None:
    """A folder holding a randomly initialised wav2lip.pth in the official format, or None
    where torch is missing."""
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    from heygem_core.engines.wav2lip.model import Wav2Lip, save_checkpoint

    folder = workdir / "checkpoints"
    folder.mkdir(exist_ok=True)
    torch.manual_seed(0)
    save_checkpoint(Wav2Lip(), folder / "wav2lip.pth")
    return folder


def _fps(video: Path) -> float:
    from heygem_core.media.probe import probe_video

    return probe_video(video).fps


def format_table(rows: list[BenchRow]) -> str:
    """A Markdown table of the rows."""
    head = (["engine", "clip", "frames"] + [f"{s} ms/f" for s in STAGES]
            + ["model ms/f", "model share", "fps", "× real time", "peak RSS MB"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.engine, r.clip, str(r.frames)] + [f"{r.stage_ms[s]:.1f}" for s in STAGES]
        cells += [f"{r.model_ms:.1f}", f"{100 * r.model_share:.0f}%" if r.model_ms else "-"]
        cells += [f"{r.fps:.1f}", f"{r.realtime:.2f}", f"{r.peak_rss_mb:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_bench(seconds: float = 20.0, long_seconds: float = 180.0, engines: list[str] | None = None) -> int:
    """Measure every available engine on a 720p clip, and memory on a long 1080p clip; Wav2Lip
    with random weights when no checkpoint is installed."""
    statuses = engine_statuses()
    names = engines or [s.name for s in statuses if s.available]
    rows: list[BenchRow] = []
    with tempfile.TemporaryDirectory(prefix="heygem-bench-") as tmp:
        workdir = Path(tmp)
        checkpoints = None
        if not any(s.name == "wav2lip" and s.available for s in statuses):
            checkpoints = random_wav2lip_checkpoints(workdir) if engines is None or "wav2lip" in engines else None
            if checkpoints is not None:
                print("no wav2lip checkpoint installed: measuring it with random weights", flush=True)
                names = ["wav2lip", *(n for n in names if n != "wav2lip")]
        print(f"making a {seconds:.0f} s 1280x720 clip ...", flush=True)
        video, speech = make_inputs(workdir, seconds, 1280, 720)
        for name in names:
            rows.append(measure(name, video, speech, f"720p {seconds:.0f}s", workdir, checkpoints))
            print(format_table(rows[-1:]).splitlines()[-1], flush=True)
        if long_seconds > 0:
            print(f"making a {long_seconds:.0f} s 1920x1080 clip ...", flush=True)
            video, speech = make_inputs(workdir, long_seconds, 1920, 1080)
            for name in names:
                rows.append(measure(name, video, speech, f"1080p {long_seconds:.0f}s", workdir, checkpoints))
                print(format_table(rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(format_table(rows))
    return 0
