"""Lip-sync quality yardstick (issue 12, item 4): how closely a render's mouth follows a real one.

For pairs (presenter V, real recording R of a person speaking), V is rendered driven by R's
audio, and the inner-lip opening of the output and of R is measured frame by frame with an
independent landmark pass (`heygem_core.face.opening`). Reported per pair: Pearson r at lag 0,
the best lag within ±MAX_LAG frames, and the closed agreement (of R's closed-mouth frames, the
share where the output's mouth is closed too); the untouched V over the same frames is the chance
level. Contact sheets of the mouth region go to --out. `--synthetic` needs no shared media.

    python benchmarks/quality.py [--quick] [--pairs V:R,...] [--engine builtin] [--out DIR]
    python benchmarks/quality.py --synthetic
"""

from __future__ import annotations

import argparse
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from heygem_core.face import MOUTH_LEFT, MOUTH_RIGHT, detect_landmarks, eye_distance  # noqa: E402
from heygem_core.errors import HeyGemError  # noqa: E402
from heygem_core.face.opening import OpeningTrack, measure_openings, resample  # noqa: E402
from heygem_core.media.ffmpeg import ffmpeg_exe  # noqa: E402
from heygem_core.media.probe import probe_video  # noqa: E402
from heygem_core.media.reader import iter_frames, pingpong_index  # noqa: E402

logger = logging.getLogger("quality")

MEDIA = ROOT.parent / "shared" / "media"
REAL = ("square_512_talking.mp4", "vertical_1080x1920_hevc_talking.mp4", "square_512_expressive.mp4")
PRESENTERS = (*REAL, "phone_720x1280_talking_noaudio.mp4", "portrait_256.png")
QUICK_PAIRS = (("phone_720x1280_talking_noaudio.mp4", "square_512_talking.mp4"),
               ("portrait_256.png", "vertical_1080x1920_hevc_talking.mp4"),
               ("square_512_talking.mp4", "square_512_expressive.mp4"))
QUICK_SECONDS = 6.0  # R cut to its first seconds in --quick
AUDIO_RATE = 16000  # Hz of the extracted driving audio
CLOSED = 0.05  # inner-lip gap over eye distance below which a mouth counts as closed
MAX_LAG = 8  # frames searched either side for the best lag
TARGET_R = 0.6  # median Pearson r at lag 0 over the pairs
TARGET_CLOSED = 0.6  # median closed agreement over the pairs
PERCENTILES = (5, 10, 25, 50, 75, 90)
DEFAULT_OUT = ROOT / "benchmarks" / "out" / "quality"
SHEET_TILES = 16  # output frames on a contact sheet
SHEET_COLUMNS = 8
TILE_WIDTH = 160  # px of one mouth crop
CROP_WIDTH = 1.6  # eye distances across a mouth crop
CROP_HEIGHT = 1.0  # eye distances down a mouth crop
LABEL_HEIGHT = 16  # px of the caption strip under each pair of crops


@dataclass(frozen=True)
class Agreement:
    """How one opening track follows the reference over the same frames."""

    r: float  # Pearson r at lag 0 (NaN when either side is constant)
    lag: int  # frames; positive: the track leads the reference
    r_lag: float  # r at that lag
    closed: float  # share of the reference's closed frames where the track is closed too
    n_closed: int  # the reference's closed frames counted


@dataclass(frozen=True)
class PairResult:
    """One rendered pair with its measures and the untouched presenter's."""

    video: str
    real: str
    frames: int
    both_found: int  # frames where output and reference both have a face
    output: Agreement
    untouched: Agreement
    seconds: float  # wall time of render and measurement


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """r over the frames where both are finite; NaN when fewer than 3 or either is constant."""
    both = np.isfinite(a) & np.isfinite(b)
    if both.sum() < 3:
        return float("nan")
    x, y = a[both].astype(np.float64), b[both].astype(np.float64)
    if x.std() < 1e-9 or y.std() < 1e-9:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def lagged(track: np.ndarray, ref: np.ndarray, lag: int) -> float:
    """r of track[t] against ref[t + lag]: at a positive lag the track shows a shape early."""
    if lag >= 0:
        return pearson(track[:len(track) - lag], ref[lag:])
    return pearson(track[-lag:], ref[:len(ref) + lag])


def agreement(track: np.ndarray, ref: np.ndarray) -> Agreement:
    """Compare `track` with `ref` frame by frame (same length, NaN where no face)."""
    rs = {lag: lagged(track, ref, lag) for lag in range(-MAX_LAG, MAX_LAG + 1)}
    finite = {lag: r for lag, r in rs.items() if np.isfinite(r)}
    best = max(finite, key=finite.get) if finite else 0
    closed = np.isfinite(track) & np.isfinite(ref) & (ref < CLOSED)
    share = float((track[closed] < CLOSED).mean()) if closed.any() else float("nan")
    return Agreement(rs[0], best, rs[best], share, int(closed.sum()))


def untouched_openings(video: OpeningTrack, n: int) -> np.ndarray:
    """The presenter's own openings at output frames 0..n-1, repeated as the pipeline repeats a
    shorter video (forward, backward, forward: the frames an untouched render would show)."""
    return video.opening[[pingpong_index(i, len(video)) for i in range(n)]]


def extract_audio(src: Path, out: Path, seconds: float | None = None) -> Path:
    """`src`'s audio as a 16 kHz mono wav, cut to `seconds` when given."""
    cut = ["-t", f"{seconds:.3f}"] if seconds else []
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y", "-i", str(src), *cut,
           "-vn", "-ac", "1", "-ar", str(AUDIO_RATE), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg could not extract the audio of {src.name}: {proc.stderr.strip()}")
    return out


class Measures:
    """Opening tracks of the shared clips, each measured once."""

    def __init__(self) -> None:
        self._tracks: dict[Path, OpeningTrack] = {}

    def __call__(self, path: Path) -> OpeningTrack:
        if path not in self._tracks:
            self._tracks[path] = measure_openings(path)
        return self._tracks[path]


def run_pair(video: Path, real: Path, engine: str, workdir: Path, measures: Measures,
             seconds: float | None) -> tuple[PairResult, Path, OpeningTrack, OpeningTrack]:
    """Render `video` driven by `real`'s audio and compare the mouths; returns the result, the
    output file and the output's and the reference's tracks at the output's frames."""
    from heygem_core.pipeline import render

    t0 = time.perf_counter()
    wav = extract_audio(real, workdir / f"{real.stem}.wav", seconds)
    out = workdir / f"{video.stem}__{real.stem}.mp4"
    render(video, wav, out, engine=engine)
    output = measure_openings(out)
    ref = resample(measures(real), output.fps, len(output))
    still = untouched_openings(measures(video), len(output))
    both = int((output.found & ref.found).sum())
    result = PairResult(video.name, real.name, len(output), both, agreement(output.opening, ref.opening),
                        agreement(still, ref.opening), time.perf_counter() - t0)
    return result, out, output, ref


def percentile_table(measures: Measures, names: tuple[str, ...]) -> str:
    """Percentiles of the real clips' openings, and their share below CLOSED."""
    head = ["real clip", "frames", *(f"p{p}" for p in PERCENTILES), f"< {CLOSED}"]
    rows = []
    for name in names:
        o = measures(MEDIA / name).opening
        o = o[np.isfinite(o)]
        rows.append([name, str(len(o)), *(f"{v:.3f}" for v in np.percentile(o, PERCENTILES)),
                     f"{100 * (o < CLOSED).mean():.0f}%"])
    return plain_table(head, rows)


def plain_table(head: list[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell; the first left-aligned, the rest right-aligned."""
    widths = [max(len(c) for c in col) for col in zip(head, *rows)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)])


def _num(value: float, pct: bool = False) -> str:
    if not np.isfinite(value):
        return "-"
    return f"{100 * value:.0f}%" if pct else f"{value:.2f}"


def result_table(results: list[PairResult]) -> str:
    """One row per pair and a summary row against the targets."""
    head = ["V -> R", "frames", "faces", "r lag0", "best lag", "r best", "closed", "(n)",
            "V r lag0", "V closed"]
    rows = [[f"{r.video} -> {r.real}", str(r.frames), f"{100 * r.both_found / max(r.frames, 1):.0f}%",
             _num(r.output.r), f"{r.output.lag:+d}", _num(r.output.r_lag), _num(r.output.closed, True),
             str(r.output.n_closed), _num(r.untouched.r), _num(r.untouched.closed, True)]
            for r in results]
    rows.append(["median", "", "", _num(_median([r.output.r for r in results])), "", "",
                 _num(_median([r.output.closed for r in results]), True), "",
                 _num(_median([r.untouched.r for r in results])),
                 _num(_median([r.untouched.closed for r in results]), True)])
    rows.append(["target", "", "", f">= {TARGET_R}", "", "", f">= {100 * TARGET_CLOSED:.0f}%", "", "", ""])
    return plain_table(head, rows)


def _median(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return statistics.median(finite) if finite else float("nan")


def verdict(results: list[PairResult]) -> str:
    r = _median([p.output.r for p in results])
    closed = _median([p.output.closed for p in results])
    ok_r = "met" if r >= TARGET_R else "not met"
    ok_c = "met" if closed >= TARGET_CLOSED else "not met"
    return (f"median r lag0 {_num(r)} (target >= {TARGET_R}: {ok_r}); median closed agreement "
            f"{_num(closed, True)} (target >= {100 * TARGET_CLOSED:.0f}%: {ok_c})")


def select_pairs(args: argparse.Namespace) -> list[tuple[str, str]]:
    if args.pairs:
        return [tuple(p.split(":", 1)) for p in args.pairs.split(",")]  # type: ignore[misc]
    if args.quick:
        return list(QUICK_PAIRS)
    return [(v, r) for r in REAL for v in PRESENTERS if v != r]


def measure_pair(v: str, r: str, args: argparse.Namespace, workdir: Path, measures: Measures) -> PairResult:
    """Render and measure one pair, write its contact sheet and say so."""
    video, real = MEDIA / v, MEDIA / r
    for path in (video, real):
        if not path.is_file():
            raise FileNotFoundError(f"no {path}")
    result, out, output, ref = run_pair(video, real, args.engine, workdir, measures,
                                        QUICK_SECONDS if args.quick else None)
    sheet = contact_sheet(out, real, output, ref, args.out / f"{video.stem}__{real.stem}.png")
    print(f"{v} -> {r}: r {_num(result.output.r)}, closed {_num(result.output.closed, True)}, "
          f"{result.seconds:.0f} s; sheet {sheet}", flush=True)
    return result


def run_real(args: argparse.Namespace) -> int:
    """The pairs from the shared media: table, summary and contact sheets."""
    if not MEDIA.is_dir():
        print(f"no shared media at {MEDIA}: nothing to measure (try --synthetic)")
        return 0
    pairs = select_pairs(args)
    measures = Measures()
    print(f"openings of the real clips (CLOSED = {CLOSED}):")
    reals = tuple(dict.fromkeys(r for _, r in pairs if (MEDIA / r).is_file()))
    print(percentile_table(measures, reals), "\n", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    results: list[PairResult] = []
    with tempfile.TemporaryDirectory(prefix="heygem-quality-") as tmp:
        for v, r in pairs:
            try:
                results.append(measure_pair(v, r, args, Path(tmp), measures))
            except (HeyGemError, RuntimeError, FileNotFoundError) as e:  # skip the pair, say why
                print(f"{v} -> {r}: skipped: {e}", flush=True)
    if not results:
        return 1
    print()
    print(result_table(results))
    print()
    print(verdict(results))
    return 0


# --------------------------------------------------------------------------- contact sheets


def frames_at(path: Path, indices: list[int]) -> dict[int, np.ndarray]:
    """The frames of a video at the given indices, past its end its last (a still: its one)."""
    info = probe_video(path)
    last = max(info.n_frames - 1, 0)
    wanted = {min(i, last) for i in indices}
    found: dict[int, np.ndarray] = {}
    for k, frame in enumerate(iter_frames(info)):
        if k in wanted:
            found[k] = frame
        if k >= max(wanted):
            break
    return {i: found[min(i, last)] for i in indices if min(i, last) in found}


def mouth_crop(frame: np.ndarray) -> np.ndarray:
    """TILE_WIDTH px wide crop around the lips (CROP_WIDTH eye distances), grey without a face."""
    tile_h = round(TILE_WIDTH * CROP_HEIGHT / CROP_WIDTH)
    points = detect_landmarks(frame)
    if points is None:
        return np.full((tile_h, TILE_WIDTH, 3), 64, np.uint8)
    cx, cy = (points[MOUTH_LEFT] + points[MOUTH_RIGHT]) / 2
    scale = TILE_WIDTH / (CROP_WIDTH * eye_distance(points))
    m = np.float32([[scale, 0, TILE_WIDTH / 2 - scale * cx], [0, scale, tile_h / 2 - scale * cy]])
    return cv2.warpAffine(frame, m, (TILE_WIDTH, tile_h), flags=cv2.INTER_AREA,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(64, 64, 64))


def _caption(index: int, out_opening: float, ref_opening: float) -> np.ndarray:
    strip = np.zeros((LABEL_HEIGHT, TILE_WIDTH, 3), np.uint8)
    text = f"#{index} out {out_opening:.2f} R {ref_opening:.2f}"
    cv2.putText(strip, text, (3, LABEL_HEIGHT - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1,
                cv2.LINE_AA)
    return strip


def contact_sheet(output_path: Path, real: Path, output: OpeningTrack, ref: OpeningTrack, dest: Path) -> Path:
    """PNG grid: each cell the output's mouth at a sampled frame above R's at the same time,
    captioned with the frame index and both openings."""
    n = len(output)
    indices = sorted(set(np.linspace(0, n - 1, SHEET_TILES).round().astype(int).tolist()))
    outs = frames_at(output_path, indices)
    real_fps = probe_video(real).fps
    reals = frames_at(real, [round(i * real_fps / output.fps) for i in indices])
    cells = []
    for i in indices:
        j = round(i * real_fps / output.fps)
        top = mouth_crop(outs[i]) if i in outs else mouth_crop(np.zeros((8, 8, 3), np.uint8))
        bottom = mouth_crop(reals[j]) if j in reals else np.zeros_like(top)
        cells.append(np.vstack([top, bottom, _caption(i, output.opening[i], ref.opening[i])]))
    while len(cells) % SHEET_COLUMNS:
        cells.append(np.zeros_like(cells[0]))
    rows = [np.hstack(cells[k:k + SHEET_COLUMNS]) for k in range(0, len(cells), SHEET_COLUMNS)]
    dest.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(dest), np.vstack(rows))
    return dest


# --------------------------------------------------------------------------- synthetic


SYNTHETIC_TEXT = ("Good morning everyone. Today we talk about rain. "
                  "Water rises into the sky and forms clouds. Then it falls again.")
SILENCE_DB = -40.0  # frame RMS below the loudest frame's by this much is silence
SILENCE_MARGIN = 3  # frames dropped at each end of a silence (the mouth's attack and release)
REST_TOLERANCE = 0.02  # over the untouched presenter's own opening still counts as at rest


def silent_frames(wav: Path, fps: float, n: int) -> np.ndarray:
    """(n,) bool: video frames inside a silence of the audio, SILENCE_MARGIN frames in."""
    from heygem_core.media.audio import read_audio

    samples = read_audio(wav).samples.astype(np.float64)
    per = len(samples) / max(n, 1)
    rms = np.array([np.sqrt(np.mean(samples[int(k * per):int((k + 1) * per)] ** 2) + 1e-12) for k in range(n)])
    silent = 20 * np.log10(rms / rms.max()) < SILENCE_DB
    inner = silent.copy()
    for shift in range(1, SILENCE_MARGIN + 1):
        inner[shift:] &= silent[:-shift]
        inner[:-shift] &= silent[shift:]
    return inner


def run_synthetic(engine: str) -> int:
    """espeak-ng speech with pauses drives a generated presenter; the output's mouth in the
    pauses should be closed (or at the presenter's own rest)."""
    from heygem_core.bench import _samples
    from heygem_core.pipeline import render

    samples = _samples()
    with tempfile.TemporaryDirectory(prefix="heygem-quality-") as tmp:
        work = Path(tmp)
        speech = samples.make_speech(work / "speech.wav", SYNTHETIC_TEXT, gap_s=0.6)
        wav = extract_audio(speech, work / "speech_16k.wav")
        video = samples.make_presenter_clip(work / "presenter.mp4", 640, 360, seconds=4.0)
        out = work / "synthetic.mp4"
        render(video, wav, out, engine=engine)
        output = measure_openings(out)
        rest = float(np.nanmedian(measure_openings(video).opening))
        quiet = silent_frames(wav, output.fps, len(output))
    silent, speaking = quiet & output.found, ~quiet & output.found
    o = output.opening
    rows = [["frames", str(len(output))], ["silent frames", str(int(silent.sum()))],
            ["untouched opening (rest)", f"{rest:.3f}"],
            ["median opening, silent / speaking", f"{np.median(o[silent]):.3f} / {np.median(o[speaking]):.3f}"],
            [f"silent frames closed (< {CLOSED})", f"{100 * (o[silent] < CLOSED).mean():.0f}%"],
            [f"silent frames at rest (< rest + {REST_TOLERANCE})",
             f"{100 * (o[silent] < rest + REST_TOLERANCE).mean():.0f}%"]]
    print(f"synthetic: espeak-ng speech on the astronaut presenter, engine {engine}")
    print(plain_table(["measure", "value"], rows))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help=f"{len(QUICK_PAIRS)} pairs, R cut to {QUICK_SECONDS:g} s")
    p.add_argument("--pairs", default="", help="V:R,... file names in ../shared/media")
    p.add_argument("--engine", default="builtin", help="engine to render with (default: %(default)s)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder of the contact sheets")
    p.add_argument("--synthetic", action="store_true",
                   help="espeak-ng speech on a generated presenter: the output's closed share in silences")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.synthetic:
        return run_synthetic(args.engine)
    return run_real(args)


if __name__ == "__main__":
    sys.exit(main())
