"""Benchmark of the check before queueing (issue 14, part 1): how long `POST /api/preflight` takes
per file, and how far a batch's first time-left estimate is from what the batch then took.

Starts ``python app.py`` on 127.0.0.1 with a throw-away workspace (face-track cache off, so that a
second render of the same clip is not faster than the first for that reason alone), makes its
inputs with ``examples/make_samples.py``, and:

1. checks each file alone through the route, twice (the very first call also starts the face
   sampler's child process; each file is uploaded again under a new name the second time, so its
   faces are sampled again), plus the clips of ``--media`` when that folder exists (measured,
   never copied); wall time of the request as the client sees it, upload included;
2. renders a 3-video batch (640x360, 1280x720 and 360x640 presenters, one audio) ``--rounds``
   times, polling its progress every 0.25 s: the first ``eta_seconds`` (the batch's first second)
   against the batch's real duration (submit to finished_at), and the same for a measured-only
   estimate (frames left over frames a second, as before this change) rebuilt from the polls.
   Round 1 runs on the config defaults; later rounds on the speed learned from earlier ones.

    .venv/bin/python benchmarks/preflight.py [--rounds 3] [--audio-seconds 8] [--media DIR]

Prints Markdown tables; progress goes to stderr. Every wait is bounded.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))
import make_samples  # noqa: E402

HOST = "127.0.0.1"
SERVER_START_S = 180.0
BATCH_DEADLINE_S = 1800.0
POLL_S = 0.25
BATCH_SIZES = ((640, 360), (1280, 720), (360, 640))  # the 3 videos of the ETA batch
MEDIA_EXTENSIONS = (".mp4", ".mov", ".png", ".jpg", ".wav")
FINISHED = ("completed", "completed_with_errors", "failed", "cancelled")

log = logging.getLogger("preflight-bench")


@dataclass
class Poll:
    at: float  # seconds since submit
    snap: dict


@dataclass
class Round:
    first_eta: float | None
    first_eta_at: float
    measured_first: float | None = None
    measured_first_at: float | None = None
    actual: float = 0.0
    polls: list[Poll] = field(default_factory=list)


def start_server(workspace: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "HEYGEM_HOST": HOST, "HEYGEM_PORT": str(port), "HEYGEM_WORKSPACE": str(workspace),
           "HEYGEM_TRACK_CACHE": "0", "HEYGEM_SPEED_REFRESH_S": "0"}
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://{HOST}:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("server did not start")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def make_inputs(folder: Path, audio_seconds: float) -> dict[str, Path]:
    speech = folder / "speech.wav"
    if make_samples.espeak_available():
        make_samples.make_speech(speech, make_samples.EN_TEXT, "en-us", 150)
        looped = folder / "lecture.wav"
        make_samples.run_ffmpeg(["-y", "-stream_loop", "-1", "-i", str(speech), "-t", str(audio_seconds),
                                 str(looped)])
    else:
        looped = make_samples.make_speechlike(folder / "lecture.wav", audio_seconds, seed=1)
    clips = {f"presenter_{w}x{h}.mp4": make_samples.make_presenter_clip(folder / f"presenter_{w}x{h}.mp4",
                                                                        w, h, seconds=6.0)
             for w, h in BATCH_SIZES}
    noface = folder / "noface_640x360.mp4"
    make_samples.run_ffmpeg(["-y", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=6",
                             "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(noface)])
    still = make_samples.make_presenter_still(folder / "presenter_still.jpg")
    long_clip = make_samples.make_presenter_clip(folder / "presenter_1280x720_30s.mp4", 1280, 720, seconds=30.0)
    return {**clips, noface.name: noface, still.name: still, long_clip.name: long_clip, "lecture.wav": looped}


def check_once(url: str, path: Path, as_name: str) -> tuple[float, dict]:
    field_name = "audio" if path.suffix == ".wav" else "videos"
    started = time.perf_counter()
    response = httpx.post(f"{url}/api/preflight", files=[(field_name, (as_name, path.read_bytes()))],
                          timeout=600)
    response.raise_for_status()
    return time.perf_counter() - started, response.json()["files"][0]


def preflight_table(url: str, files: list[Path]) -> list[str]:
    rows = ["| file | size | ok | faces (share) | 1st check s | 2nd check s | server-side s (2nd) |",
            "|---|---|---|---|---:|---:|---:|"]
    for path in files:
        first, row = check_once(url, path, path.name)
        second, again = check_once(url, path, f"again_{path.name}")
        size = f'{row["width"]}x{row["height"]}, {row["duration_s"]} s' if row.get("width") else \
            f'{row.get("duration_s")} s'
        faces = f'{row["faces"]} ({row["face_share"]})' if row.get("face_found") is not None else "–"
        verdict = "yes" if row["ok"] else f'no: {row["error_code"]}'
        rows.append(f"| {path.name} | {size} | {verdict} | {faces} | {first:.2f} | {second:.2f} | "
                    f'{again["check_seconds"]:.2f} |')
        log.info("checked %s: %.2f s, again %.2f s", path.name, first, second)
    return rows


def measured_eta(polls: list[Poll], now: Poll) -> float | None:
    """Frames left over frames a second of the items worked so far, as `eta_seconds` computes
    without estimates, with each item's start taken from the first poll that shows it running."""
    started: dict[int, float] = {}
    for poll in polls:
        for item in poll.snap["items"]:
            if item["status"] != "pending":
                started.setdefault(item["index"], poll.at)
    frames = seconds = left = 0.0
    for item in now.snap["items"]:
        total = max(item["frames_total"], 1)
        if item["status"] == "pending":
            left += total
            continue
        if item["status"] == "processing":
            left += total - item["frames_done"]
            frames += item["frames_done"]
            seconds += now.at - started[item["index"]]
        else:
            frames += item["frames_done"] if item["status"] != "done" else total
            seconds += item["duration_s"] or 0.0
    return None if frames <= 0 or seconds <= 0 else left / (frames / seconds)


def run_batch(url: str, inputs: dict[str, Path]) -> Round:
    videos = [inputs[f"presenter_{w}x{h}.mp4"] for w, h in BATCH_SIZES]
    files = [("audio", ("lecture.wav", inputs["lecture.wav"].read_bytes()))]
    files += [("videos", (p.name, p.read_bytes())) for p in videos]
    submitted = time.monotonic()
    response = httpx.post(f"{url}/start_batch", files=files, timeout=600)
    response.raise_for_status()
    batch_id = response.json()["batch_id"]
    polls: list[Poll] = []
    deadline = submitted + BATCH_DEADLINE_S
    while time.monotonic() < deadline:
        snap = httpx.get(f"{url}/api/progress/{batch_id}", timeout=30).json()
        polls.append(Poll(time.monotonic() - submitted, snap))
        if snap["status"] in FINISHED:
            break
        time.sleep(POLL_S)
    final = polls[-1].snap
    if final["status"] not in FINISHED:
        raise RuntimeError(f"batch {batch_id} did not finish")
    result = Round(first_eta=polls[0].snap["eta_seconds"], first_eta_at=polls[0].at,
                   actual=final["finished_at"] - final["created_at"], polls=polls)
    for i, poll in enumerate(polls):
        eta = measured_eta(polls[: i + 1], poll)
        if eta is not None:
            result.measured_first, result.measured_first_at = eta, poll.at
            break
    log.info("batch %s: first eta %s at %.2f s, took %.1f s", batch_id[:8], result.first_eta,
             result.first_eta_at, result.actual)
    return result


def error_text(estimate: float | None, elapsed: float | None, actual: float) -> str:
    if estimate is None or elapsed is None:
        return "–"
    truth = actual - elapsed
    return f"{estimate:.0f} s vs {truth:.0f} s ({100 * (estimate - truth) / truth:+.0f} %)"


def eta_table(rounds: list[Round]) -> list[str]:
    rows = ["| round | speed from | batch took | first ETA (at s) vs time left then | measured-only: first value "
            "(at s) vs time left then |", "|---|---|---:|---|---|"]
    for number, r in enumerate(rounds, 1):
        source = "config defaults" if number == 1 else f"{number - 1} earlier batch(es)"
        rows.append(f"| {number} | {source} | {r.actual:.1f} s | "
                    f"{error_text(r.first_eta, r.first_eta_at, r.actual)} ({r.first_eta_at:.1f}) | "
                    f"{error_text(r.measured_first, r.measured_first_at, r.actual)} "
                    f"({'–' if r.measured_first_at is None else f'{r.measured_first_at:.1f}'}) |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="3-video batches rendered one after another")
    parser.add_argument("--audio-seconds", type=float, default=8.0, help="the batch's audio length")
    parser.add_argument("--media", type=Path, default=Path("/work/shared/media"),
                        help="a folder of real clips to check too (skipped when missing)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    folder = Path(tempfile.mkdtemp(prefix="heygem-preflight-bench-"))
    proc = None
    try:
        inputs = make_inputs(folder / "inputs", args.audio_seconds)
        port = free_port()
        proc = start_server(folder / "workspace", port)
        url = f"http://{HOST}:{port}"
        checked = [p for name, p in inputs.items()]
        if args.media.is_dir():
            checked += sorted(p for p in args.media.iterdir() if p.suffix.lower() in MEDIA_EXTENSIONS)
        print("\n".join(preflight_table(url, checked)), "\n", flush=True)
        rounds = [run_batch(url, inputs) for _ in range(max(1, args.rounds))]
        print("\n".join(eta_table(rounds)), flush=True)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
