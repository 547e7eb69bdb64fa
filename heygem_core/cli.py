"""`python -m heygem_core render|engines|check|worker|queue|bench`: a thin command line over the
core."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from heygem_core.config import get_settings
from heygem_core.engines import ENGINE_CHOICES, create_engine, engine_statuses
from heygem_core.errors import HeyGemError
from heygem_core.choice import FaceChoice
from heygem_core.jobs.naming import DEFAULT_PATTERN, NameFields, check_pattern, output_name
from heygem_core.pipeline import Stage, render

logger = logging.getLogger("heygem_core")
PARENT_POLL_S = 1.0  # a worker the app spawned also notices the app's death this often


def cmd_render(args: argparse.Namespace) -> int:
    """Render every video to the one audio; a failed video is reported and skipped."""
    settings = get_settings()
    out_dir = Path(args.out)
    videos = [Path(v) for v in args.video]
    try:
        engine = create_engine(args.engine or settings.default_engine, settings)
    except HeyGemError as e:
        print(f"✗ {e}", file=sys.stderr)
        return 2
    try:
        pattern = check_pattern(args.naming)
        face = face_choice(args)
    except HeyGemError as e:
        print(f"✗ {e}", file=sys.stderr)
        return 2
    failures, taken, when = 0, set(), time.time()
    with tqdm(total=len(videos), desc="batch", unit="video", position=0) as overall:
        for index, video in enumerate(videos):
            fields = NameFields(video.name, Path(args.audio).name, index, len(videos), "", engine.name, when)
            target = out_dir / output_name(pattern, fields, taken)
            failures += not _render_one(video, Path(args.audio), target, engine, settings, face)
            overall.update(1)
    engine.close()
    done = len(videos) - failures
    tqdm.write(f"{done}/{len(videos)} videos rendered into {out_dir}"
               + (f", {failures} failed" if failures else ""))
    return 1 if failures else 0


def face_choice(args: argparse.Namespace) -> FaceChoice:
    """The face the --face-* flags choose (the same for every video); the largest without them."""
    point = box = None
    try:
        if args.face_point:
            point = [float(v) for v in args.face_point.split(",")]
        if args.face_box:
            box = [float(v) for v in args.face_box.split(",")]
    except ValueError as e:
        raise HeyGemError("bad_face_choice", detail=str(e)) from e
    return FaceChoice.from_dict({"point": point, "box": box, "reference": args.face_ref})


def _render_one(video: Path, audio: Path, target: Path, engine, settings, face: FaceChoice) -> bool:
    bar = tqdm(total=1, desc=video.name[:30], unit="frame", position=1, leave=False)

    def on_progress(stage: str, done: int, total: int) -> None:
        if stage == Stage.RENDER.value and total:
            bar.total = total
            bar.update(done - bar.n)

    try:
        result = render(video, audio, target, engine, on_progress=on_progress, settings=settings, face=face)
    except HeyGemError as e:
        tqdm.write(f"✗ {video.name}: [{e.code.value}] {e.message}")
        return False
    finally:
        bar.close()
    note = f" ({'; '.join(result.warnings)})" if result.warnings else ""
    tqdm.write(f"✓ {video.name} -> {result.output} [{result.n_frames} frames, "
               f"{result.timings['total']:.1f} s]{note}")
    return True


def cmd_engines(args: argparse.Namespace) -> int:
    """List the engines and whether each can run here."""
    for status in engine_statuses():
        mark = "✓" if status.available else "✗"
        print(f"{mark} {status.name:10s} {status.label}" + (f" — {status.reason}" if status.reason else ""))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Check that ffmpeg runs and the face models load: what a fresh install needs."""
    import subprocess

    import numpy as np

    from heygem_core.face import FaceTracker
    from heygem_core.media.ffmpeg import ffmpeg_exe

    exe = ffmpeg_exe()
    version = subprocess.run([exe, "-version"], capture_output=True, text=True, check=True).stdout
    print(f"✓ ffmpeg: {version.splitlines()[0]}")
    with FaceTracker() as tracker:
        tracker.track(np.zeros((64, 64, 3), np.uint8))
    print("✓ face models load (MediaPipe face mesh + full-range detector)")
    return cmd_engines(args)


def cmd_worker(args: argparse.Namespace) -> int:
    """Take items from the shared queue until SIGINT/SIGTERM; the running item is interrupted
    and goes back to the queue (its front on the next start; at once on a Redis queue)."""
    import signal
    import threading

    from heygem_core.face.mesh import preload as preload_mesh
    from heygem_core.jobs.heartbeat import ROLE_WORKER
    from heygem_core.jobs.redis_store import safe_url
    from heygem_core.jobs.runtime import build_runtime, die_with_parent, parent_gone

    settings = get_settings()
    if args.device:
        settings = replace(settings, device=args.device)
    runtime = build_runtime(settings, owns_log=False, renders=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    die_with_parent()
    runtime.start_liveness(ROLE_WORKER, device=settings.device, threads=args.workers)
    runtime.queue.start(args.workers)
    preload_mesh()  # while the queue is empty, so the first item does not wait for MediaPipe
    shared = f"Redis {safe_url(settings.redis_url)}" if settings.redis_url else f"workspace {settings.workspace}"
    print(f"worker running ({args.workers} thread(s), device {settings.device}), {shared}", flush=True)
    while not stop.wait(PARENT_POLL_S) and not parent_gone():
        pass
    runtime.close()
    return 0


QUEUE_ACTIONS = ("show", "pause", "resume", "front", "cancel")


def cmd_queue(args: argparse.Namespace) -> int:
    """Show the line of the workspace's store (SQLite, or Redis with HEYGEM_REDIS_URL), or change
    it: pause, resume, move a batch to the front, cancel a batch or one of its items."""
    from heygem_core.jobs.queue import JobQueue
    from heygem_core.jobs.runtime import open_store
    from heygem_core.jobs.service import BatchService
    from heygem_core.jobs.snapshot import queue_line
    from heygem_core.realtime_log import setup_realtime_log

    settings = get_settings()
    if args.action in ("front", "cancel") and not args.batch:
        print(f"✗ queue {args.action} needs a batch id", file=sys.stderr)
        return 2
    setup_realtime_log(settings.log_file, backups=settings.log_backups, rotate=False)
    with open_store(settings) as store:
        service = BatchService(store, JobQueue(settings), settings)
        try:
            _queue_action(service, args)
        except HeyGemError as e:
            print(f"✗ {e}", file=sys.stderr)
            return 2
        _print_line(queue_line(store))
    return 0


def _queue_action(service, args: argparse.Namespace) -> None:
    if args.action == "pause":
        service.pause()
    elif args.action == "resume":
        service.resume()
    elif args.action == "front":
        service.move_to_front(args.batch)
    elif args.action == "cancel" and args.index is None:
        service.cancel(args.batch)
    elif args.action == "cancel":
        item = service.cancel_item(args.batch, args.index)
        print(f"item {item.index} ({item.name}): {item.status.value}"
              + (", stopping" if item.cancel_requested and not item.status.finished else ""))


def _print_line(line: dict) -> None:
    print(f"queue {'paused' if line['paused'] else 'running'}, {line['length']} unfinished batch(es)")
    for entry in line["batches"]:
        now = f", rendering {entry['running']}" if entry["running"] else ""
        print(f"{entry['position']:>3}. {entry['batch_id'] or '(another user)'} {entry['status']} "
              f"{entry['processed_count']}/{entry['total_count']} done, "
              f"{entry['pending_count']} waiting{now}")


def cmd_bench(args: argparse.Namespace) -> int:
    """Speed and memory table of every available engine."""
    from heygem_core.bench import run_bench

    return run_bench(seconds=args.seconds, long_seconds=args.long_seconds, engines=args.engine)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m heygem_core", description="HeyGem batch lip-sync")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("render", help="lip-sync one or more videos to one audio")
    p.add_argument("--audio", required=True, help="speech: wav, mp3, m4a, aac, flac, ogg or a video")
    p.add_argument("--video", required=True, nargs="+", help="presenter videos or still images")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--engine", choices=ENGINE_CHOICES, default=None, help="default: auto")
    p.add_argument("--naming", default=DEFAULT_PATTERN,
                   help="output names: {video} {audio} {index} {engine} {date} (default: %(default)s)")
    p.add_argument("--face-point", metavar="X,Y", help="with several faces: the one at this pixel")
    p.add_argument("--face-box", metavar="X0,Y0,X1,Y1", help="with several faces: the one in this box")
    p.add_argument("--face-ref", metavar="PHOTO", help="with several faces: the one most like this photo")
    p.set_defaults(func=cmd_render)
    p = sub.add_parser("engines", help="list the lip-sync engines and whether they can run")
    p.set_defaults(func=cmd_engines)
    p = sub.add_parser("worker", help="render queued items (run beside `python app.py` with "
                                      "HEYGEM_INPROCESS_WORKERS=0, or for more throughput)")
    p.add_argument("--workers", type=int, default=1, help="items rendered at once in this process")
    p.add_argument("--device", default=None, metavar="cpu|cuda:N",
                   help="device of this worker (default: HEYGEM_DEVICE, else auto)")
    p.set_defaults(func=cmd_worker)
    p = sub.add_parser("queue", help="show the line of batches, pause or resume it, move a batch "
                                     "to the front, cancel a batch or one item")
    p.add_argument("action", nargs="?", choices=QUEUE_ACTIONS, default="show")
    p.add_argument("batch", nargs="?", default="", help="batch id (front, cancel)")
    p.add_argument("index", nargs="?", type=int, default=None,
                   help="item index, 0-based (cancel only that item)")
    p.set_defaults(func=cmd_queue)
    p = sub.add_parser("check", help="check that ffmpeg and the face models work")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("bench", help="measure speed and memory per stage")
    p.add_argument("--seconds", type=float, default=20.0, help="length of the 720p clip")
    p.add_argument("--long-seconds", type=float, default=180.0, help="length of the 1080p memory clip (0: skip)")
    p.add_argument("--engine", nargs="*", default=None, help="engines to measure (default: all available)")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m heygem_core`."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(args.func(args))
