"""`python -m heygem_core bench`: speed per stage and peak memory of every available engine.

Each render runs in a fresh process so its peak RSS is its own. Inputs are generated (the
astronaut presenter of examples/make_samples.py and espeak-ng speech), never downloaded; where
the project's shared media folder is present, a real talking clip padded to 720p is measured too.
Each clip also gets an I/O floor: the same decode and encode with no tracking and no engine,
which no render can beat. Without an installed checkpoint, Wav2Lip is measured with a randomly
initialised network saved in the official format: the same compute as the real weights.
Every render starts with an empty face-track cache of its own, except the "second render" row of
the 720p clip: the same video again, its track read from the first render's cache."""

from __future__ import annotations

import importlib.util
import logging
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from types import ModuleType

from heygem_core.config import PROJECT_ROOT, get_settings
from heygem_core.engines import EngineStatus, engine_statuses

logger = logging.getLogger(__name__)

STAGES = ("decode", "track", "audio", "render", "encode")
SPEECH_TEXT = ("Good morning everyone. Today we will talk about the water cycle. "
               "Water evaporates from the sea, rises into the sky and forms clouds. "
               "When the clouds cool down, it falls again as rain or snow. ")
IO_FLOOR = "io floor"  # the engine name of the decode + encode row
SHARED_MEDIA = PROJECT_ROOT.parent / "shared" / "media"  # real footage, where present (never committed)
REAL_CLIP = "square_512_talking.mp4"  # a real talking head with its own speech
REAL_SECONDS = 8.0  # seconds of it measured
SECOND_RENDER = "second render (tracking cached)"  # appended to the clip's label


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
    floor_wall: float = 0.0  # seconds the I/O floor of the same clip took (0: not measured)

    @property
    def floor_share(self) -> float:
        """The I/O floor's share of this row's wall time (1.0: as fast as decode + encode)."""
        return self.floor_wall / self.wall

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
    return video, loop_audio(speech, workdir / f"speech_{seconds:.0f}s.wav", seconds)


def loop_audio(source: Path, out: Path, seconds: float) -> Path:
    """`source`'s audio looped to `seconds`, 16 kHz mono."""
    _samples().run_ffmpeg(["-y", "-stream_loop", "-1", "-i", str(source), "-t", f"{seconds:.3f}",
                           "-vn", "-ac", "1", "-ar", "16000", str(out)])
    return out


def _render_in_child(video: str, audio: str, out: str, engine: str, checkpoints: str | None,
                     track_cache: str) -> tuple[dict[str, float], int, float, int]:
    import dataclasses

    from heygem_core.engines import create_engine
    from heygem_core.pipeline import render

    settings = dataclasses.replace(get_settings(), track_cache=True, track_cache_dir=Path(track_cache))
    if checkpoints:
        settings = dataclasses.replace(settings, checkpoints_dir=Path(checkpoints))
    t0 = time.perf_counter()
    lip_engine = create_engine(engine, settings)
    model_s = _time_forward(lip_engine)
    result = render(video, audio, out, lip_engine, settings=settings)
    wall = time.perf_counter() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {**result.timings, "model": model_s[0]}, result.n_frames, wall, peak_kb


def _copy_in_child(video: str, audio: str, out: str) -> tuple[dict[str, float], int, float, int]:
    """The I/O floor of a render: probe, audio, then every frame decoded and encoded with the
    pipeline's reader, writer, settings and buffers, nothing in between."""
    from heygem_core.buffers import Prefetch, WriteBehind
    from heygem_core.media.audio import read_audio
    from heygem_core.media.probe import probe_video
    from heygem_core.media.reader import FrameSource
    from heygem_core.media.writer import VideoWriter
    from heygem_core.pipeline import QUEUE_DEPTH

    settings = get_settings()
    t0 = time.perf_counter()
    info = probe_video(video, settings)
    n_out = max(1, round(read_audio(audio, settings).duration * info.fps))
    timings = {"audio": time.perf_counter() - t0, "decode": 0.0, "encode": 0.0}
    with FrameSource(info, n_out, workdir=Path(out).parent, decode_threads=settings.decode_threads) as source, \
            VideoWriter(out, info.width, info.height, info.fps, audio_path=audio, preset=settings.encode_preset,
                        crf=settings.encode_crf, x264_params=settings.encode_x264_params,
                        colorspace=info.colorspace) as writer:
        with Prefetch(source, QUEUE_DEPTH) as frames, WriteBehind(writer.write, QUEUE_DEPTH) as sink:
            t = time.perf_counter()
            for _, frame in frames:
                t_put = time.perf_counter()
                timings["decode"] += t_put - t
                sink.put(frame)
                t = time.perf_counter()
                timings["encode"] += t - t_put
            t = time.perf_counter()
    timings["encode"] += time.perf_counter() - t  # the writer's close: the encoder's tail
    wall = time.perf_counter() - t0
    return timings, n_out, wall, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


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
            checkpoints: Path | None = None, track_cache: Path | None = None) -> BenchRow:
    """Render once in a fresh process and collect stage times and peak RSS; the engine
    IO_FLOOR decodes and encodes only. Face tracks are cached in `track_cache` (default: a
    fresh folder, so the video is tracked)."""
    out = str(workdir / f"out_{engine}_{label}.mp4".replace(" ", "_"))
    track_cache = track_cache or Path(tempfile.mkdtemp(prefix="tracks-", dir=workdir))
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        if engine == IO_FLOOR:
            job = pool.submit(_copy_in_child, str(video), str(audio), out)
        else:
            job = pool.submit(_render_in_child, str(video), str(audio), out, engine,
                              str(checkpoints) if checkpoints else None, str(track_cache))
        timings, frames, wall, peak_kb = job.result()
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
            + ["model ms/f", "model share", "fps", "× real time", "I/O floor share", "peak RSS MB"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.engine, r.clip, str(r.frames)] + [f"{r.stage_ms[s]:.1f}" for s in STAGES]
        cells += [f"{r.model_ms:.1f}", f"{100 * r.model_share:.0f}%" if r.model_ms else "-"]
        cells += [f"{r.fps:.1f}", f"{r.realtime:.2f}", f"{100 * r.floor_share:.0f}%" if r.floor_wall else "-"]
        cells += [f"{r.peak_rss_mb:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def make_real_input(workdir: Path, source: Path, seconds: float = REAL_SECONDS) -> Path:
    """`seconds` of a real clip scaled to 720 px high and padded to 1280x720, its audio kept."""
    out = workdir / f"{source.stem}_720p_{seconds:.0f}s.mp4"
    _samples().run_ffmpeg(["-i", str(source), "-t", f"{seconds:.3f}",
                           "-vf", "scale=-2:720,pad=1280:720:(ow-iw)/2:0,setsar=1",
                           "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
                           "-c:a", "aac", "-b:a", "128k", str(out)])
    return out


def measure_clip(names: list[str], video: Path, audio: Path, label: str, workdir: Path,
                 checkpoints: Path | None, second: bool = False) -> list[BenchRow]:
    """The I/O floor of one clip, then each engine on it with its share of that floor; with
    `second`, each engine renders the clip again with the track its first render cached."""
    floor = measure(IO_FLOOR, video, audio, label, workdir)
    rows = [floor]
    print(format_table(rows).splitlines()[-1], flush=True)
    for name in names:
        tracks = Path(tempfile.mkdtemp(prefix=f"tracks-{name}-", dir=workdir))
        runs = [label, f"{label}, {SECOND_RENDER}"] if second else [label]
        for run in runs:
            row = measure(name, video, audio, run, workdir, checkpoints, track_cache=tracks)
            rows.append(replace(row, floor_wall=floor.wall))
            print(format_table(rows[-1:]).splitlines()[-1], flush=True)
    return rows


def _wav2lip_weights(workdir: Path, statuses: list[EngineStatus], engines: list[str] | None, names: list[str]
                     ) -> tuple[Path | None, list[str]]:
    """Random Wav2Lip weights where no checkpoint is installed (and wav2lip is wanted)."""
    if any(s.name == "wav2lip" and s.available for s in statuses):
        return None, names
    checkpoints = random_wav2lip_checkpoints(workdir) if engines is None or "wav2lip" in engines else None
    if checkpoints is None:
        return None, names
    print("no wav2lip checkpoint installed: measuring it with random weights", flush=True)
    return checkpoints, ["wav2lip", *(n for n in names if n != "wav2lip")]


def run_bench(seconds: float = 20.0, long_seconds: float = 180.0, engines: list[str] | None = None) -> int:
    """Measure every available engine on a 720p clip (and on real footage where the shared media
    is present), each beside its clip's I/O floor, and memory on a long 1080p clip; Wav2Lip
    with random weights when no checkpoint is installed."""
    statuses = engine_statuses()
    names = engines or [s.name for s in statuses if s.available]
    rows: list[BenchRow] = []
    with tempfile.TemporaryDirectory(prefix="heygem-bench-") as tmp:
        workdir = Path(tmp)
        checkpoints, names = _wav2lip_weights(workdir, statuses, engines, names)
        print(f"making a {seconds:.0f} s 1280x720 clip ...", flush=True)
        video, speech = make_inputs(workdir, seconds, 1280, 720)
        rows += measure_clip(names, video, speech, f"720p {seconds:.0f}s", workdir, checkpoints, second=True)
        if (SHARED_MEDIA / REAL_CLIP).is_file():
            real = make_real_input(workdir, SHARED_MEDIA / REAL_CLIP)
            rows += measure_clip(names, real, real, f"real 720p {REAL_SECONDS:.0f}s", workdir, checkpoints,
                                 second=True)
            if seconds > REAL_SECONDS:  # a short presenter clip, longer speech: the video ping-pongs
                speech = loop_audio(real, workdir / f"real_speech_{seconds:.0f}s.wav", seconds)
                rows += measure_clip(names, real, speech, f"real 720p {REAL_SECONDS:.0f}s, {seconds:.0f}s speech",
                                     workdir, checkpoints)
        else:
            print(f"no {SHARED_MEDIA / REAL_CLIP}: no real-footage row", flush=True)
        if long_seconds > 0:
            print(f"making a {long_seconds:.0f} s 1920x1080 clip ...", flush=True)
            video, speech = make_inputs(workdir, long_seconds, 1920, 1080)
            rows += measure_clip(names, video, speech, f"1080p {long_seconds:.0f}s", workdir, checkpoints)
    print()
    print(format_table(rows))
    return 0
