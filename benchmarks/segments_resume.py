"""Time lost to a `kill -9` late in a long render, with segments (HEYGEM_SEGMENT_SECONDS) and
without: a long synthetic presenter clip is rendered in a child process, which is killed at 90 % of
its frames and started again; the time lost is the killed run's time plus the restarted run's,
less an uninterrupted run's. Also checks the resumed output against the uninterrupted one (frames,
duration, audio, PSNR) and draws a contact sheet of the mouth on both sides of the joins.

    .venv/bin/python benchmarks/segments_resume.py                       # 120 s clip, 15 s segments
    .venv/bin/python benchmarks/segments_resume.py --seconds 30 --segment-seconds 5   # a quick look
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))

import make_samples  # noqa: E402

from heygem_core import face  # noqa: E402
from heygem_core.media.ffmpeg import ffmpeg_exe  # noqa: E402
from heygem_core.media.probe import probe_video  # noqa: E402
from heygem_core.media.reader import iter_frames  # noqa: E402

log = logging.getLogger("segments_resume")

RUN_LIMIT_S = 3600.0  # bound on one child render
CROP = 96  # px around the mouth centre on the sheet (before enlarging)
ENLARGE = 3
SHEET_SIDE = 2  # frames each side of a join on the sheet

# the render, in a child process like a worker's: one progress line a frame on stdout
CHILD = """
import json, sys, time
from heygem_core.pipeline import render
t0 = time.monotonic()
def progress(stage, done, total):
    print(json.dumps({"stage": stage, "done": done, "total": total, "t": time.monotonic() - t0}), flush=True)
result = render(sys.argv[1], sys.argv[2], sys.argv[3], "builtin", work_dir=sys.argv[4], on_progress=progress)
print(json.dumps({"resumed_from": result.resumed_from, "frames": result.n_frames,
                  "t": time.monotonic() - t0}), flush=True)
"""


@dataclass
class Run:
    """One child render: its wall time, and where it was killed or what it resumed from."""

    seconds: float
    killed_at: int | None = None  # frames rendered when killed
    resumed_from: int = 0


def child_render(video: Path, audio: Path, out: Path, work: Path, segment_s: float, crf: int,
                 kill_at: float | None = None) -> Run:
    """Render in a child process; with `kill_at`, SIGKILL it once that fraction of frames is done."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HEYGEM_SEGMENT_SECONDS": str(segment_s),
           "HEYGEM_TRACK_CACHE": "0", "HEYGEM_WORKSPACE": str(work.parent), "HEYGEM_ENCODE_CRF": str(crf)}
    start = time.monotonic()
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(video), str(audio), str(out), str(work)],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    run = Run(0.0)
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if time.monotonic() - start > RUN_LIMIT_S:
                raise TimeoutError("a render ran past its limit")
            msg = json.loads(line)
            if "resumed_from" in msg:
                run.resumed_from = msg["resumed_from"]
            elif kill_at is not None and msg["stage"] == "render" and msg["done"] >= kill_at * msg["total"]:
                child.send_signal(signal.SIGKILL)
                run.killed_at = msg["done"]
                break
    finally:
        if child.poll() is None and run.killed_at is None:
            child.kill()
        child.wait()
    run.seconds = time.monotonic() - start
    if run.killed_at is None and child.returncode != 0:
        raise RuntimeError(f"the render failed ({child.returncode})")
    return run


def pcm(path: Path) -> np.ndarray:
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:a:0", "-f", "s16le", "-ac", "1",
                          "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.int16)


def container_duration(path: Path) -> str:
    err = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True).stderr.decode()
    return err.split("Duration: ", 1)[1].split(",", 1)[0] if "Duration: " in err else "?"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def compare(resumed: Path, reference: Path, joins: list[int]) -> tuple[dict[str, object], dict[int, list]]:
    """Frame count, duration, audio and PSNR of `resumed` against `reference`; the frames around
    each join (both outputs) for the sheet."""
    a, b = probe_video(resumed), probe_video(reference)
    scores, around = [], {j: [] for j in joins}
    for i, (x, y) in enumerate(zip(iter_frames(a), iter_frames(b), strict=True)):
        scores.append(psnr(x, y))
        for j in joins:
            if j - SHEET_SIDE <= i < j + SHEET_SIDE:
                around[j].append((i, x, y))
    report = {"frames": (a.n_frames, b.n_frames), "duration": (container_duration(resumed),
                                                                container_duration(reference)),
              "audio identical": bool(np.array_equal(pcm(resumed), pcm(reference))),
              "psnr min": round(min(scores), 1), "psnr median": round(float(np.median(scores)), 1),
              "frames under 38 dB": [(i, round(v, 1)) for i, v in enumerate(scores) if v < 38.0][:40],
              "psnr at joins": {j: [round(scores[i], 1) for i in range(j - SHEET_SIDE, j + SHEET_SIDE)]
                                for j in joins}}
    return report, around


def mouth_crop(frame: np.ndarray, centre: tuple[int, int]) -> np.ndarray:
    x, y = centre
    h, w = frame.shape[:2]
    x0, y0 = min(max(0, x - CROP), w - 2 * CROP), min(max(0, y - CROP // 2), h - CROP)
    crop = frame[y0:y0 + CROP, x0:x0 + 2 * CROP]
    return cv2.resize(crop, None, fx=ENLARGE, fy=ENLARGE, interpolation=cv2.INTER_NEAREST)


def contact_sheet(around: dict[int, list], labels: dict[int, str], path: Path) -> None:
    """Per join: a row of the resumed output's mouth (frames j-2..j+1), a row of the
    uninterrupted one's, and their difference x8."""
    rows = []
    for j, frames in around.items():
        points = face.detect_landmarks(frames[0][2])
        centre = (int(points[13][0]), int(points[13][1])) if points is not None else (frames[0][1].shape[1] // 2,
                                                                                      frames[0][1].shape[0] // 2)
        for name, pick in (("resumed", 1), ("uninterrupted", 2), ("|diff| x8", None)):
            tiles = []
            for i, x, y in frames:
                tile = (mouth_crop(x, centre) if pick == 1 else mouth_crop(y, centre) if pick == 2 else
                        np.clip(np.abs(mouth_crop(x, centre).astype(int) - mouth_crop(y, centre)) * 8, 0,
                                255).astype(np.uint8))
                tile = np.ascontiguousarray(tile)
                cv2.putText(tile, f"{labels[j]} {name} f{i}", (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                            (0, 255, 255), 1, cv2.LINE_AA)
                if i == j:
                    cv2.line(tile, (0, 0), (0, tile.shape[0] - 1), (0, 0, 255), 3)  # the first frame after
                tiles.append(tile)
            rows.append(np.concatenate(tiles, axis=1))
    cv2.imwrite(str(path), np.concatenate(rows, axis=0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="clip and speech length")
    parser.add_argument("--segment-seconds", type=float, default=15.0, help="HEYGEM_SEGMENT_SECONDS")
    parser.add_argument("--kill-at", type=float, default=0.9, help="fraction of frames rendered when killed")
    parser.add_argument("--size", default="640x360", help="clip size WxH")
    parser.add_argument("--sheet", type=Path, default=None, help="where to write the contact sheet PNG")
    parser.add_argument("--crf", type=int, default=18, help="HEYGEM_ENCODE_CRF (0: lossless, to see the "
                                                            "render's own differences without the encoder's)")
    parser.add_argument("--keep", type=Path, default=None, help="copy the inputs and outputs here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="heygem-segments-") as tmp:
        folder = Path(tmp)
        log.info("making a %.0f s %dx%d clip and speech", args.seconds, width, height)
        video = make_samples.make_presenter_clip(folder / "clip.mp4", width, height, args.seconds)
        audio = make_samples.make_speechlike(folder / "speech.wav", args.seconds, seed=7)
        runs: dict[str, Run] = {}
        for mode, seg in (("plain", 0.0), ("segments", args.segment_seconds)):
            log.info("%s: uninterrupted", mode)
            runs[f"{mode} whole"] = child_render(video, audio, folder / f"{mode}_whole.mp4",
                                                 folder / f"w-{mode}-whole", seg, args.crf)
            out, work = folder / f"{mode}_killed.mp4", folder / f"w-{mode}-killed"
            log.info("%s: killed at %.0f %%", mode, 100 * args.kill_at)
            runs[f"{mode} killed"] = child_render(video, audio, out, work, seg, args.crf, kill_at=args.kill_at)
            log.info("%s: restarted", mode)
            runs[f"{mode} restart"] = child_render(video, audio, out, work, seg, args.crf)
        print(json.dumps({k: vars(v) for k, v in runs.items()}, indent=1))
        n = probe_video(folder / "segments_whole.mp4").n_frames
        for mode in ("plain", "segments"):
            whole, killed, restart = runs[f"{mode} whole"], runs[f"{mode} killed"], runs[f"{mode} restart"]
            lost = killed.seconds + restart.seconds - whole.seconds
            print(f"{mode}: uninterrupted {whole.seconds:.1f} s; killed at frame {killed.killed_at}/{n} after "
                  f"{killed.seconds:.1f} s; restart resumed at frame {restart.resumed_from} and took "
                  f"{restart.seconds:.1f} s; time lost {lost:.1f} s ({100 * lost / whole.seconds:.0f} % of a render)")
        resume_at = runs["segments restart"].resumed_from
        segment_frames = round(args.segment_seconds * probe_video(video).fps)
        joins = [segment_frames, resume_at] if resume_at and resume_at != segment_frames else [segment_frames]
        report, around = compare(folder / "segments_killed.mp4", folder / "segments_whole.mp4", joins)
        print("resumed vs uninterrupted (segments):", json.dumps(report))
        plain_vs_seg, _ = compare(folder / "segments_whole.mp4", folder / "plain_whole.mp4", [])
        print("segmented vs plain, both uninterrupted:", json.dumps(plain_vs_seg))
        if args.sheet:
            labels = {j: "resume" if j == resume_at else "join" for j in joins}
            contact_sheet(around, labels, args.sheet)
            print(f"contact sheet: {args.sheet}")
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for path in folder.glob("*.*"):
                shutil.copy2(path, args.keep / path.name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
