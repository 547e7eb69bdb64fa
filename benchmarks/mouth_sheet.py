"""Contact sheet of the built-in engine's mouth: the mouth region of one face, enlarged, at
several openings (columns) and roundings (rows), to judge the painted interior by eye.

    .venv/bin/python benchmarks/mouth_sheet.py FACE.png out/mouth_sheets/portrait.png
    .venv/bin/python benchmarks/mouth_sheet.py clip.mp4 out/mouth_sheets/clip.png --upscale 2

A video's first frame is used. The sheet also says how long one `paint_interior` call takes
on this face.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from heygem_core.engines.builtin.engine import mouth_colours, reshape_mouth  # noqa: E402
from heygem_core.engines.builtin.interior import paint_interior  # noqa: E402
from heygem_core.engines.builtin.warp import INNER_CONTOUR, mouth_frame, plan_mouth  # noqa: E402
from heygem_core.face import FaceTracker  # noqa: E402

log = logging.getLogger("mouth_sheet")

OPENINGS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
ROUNDINGS = (0.0, 0.6)
CROP_WIDTH = 1.6  # eye distances across the crop
CROP_HEIGHT = 0.8  # eye distances down the crop
TILE_WIDTH = 520  # px of one enlarged tile
SHEET_COLUMNS = 3
TIMING_CALLS = 1000


def first_frame(path: Path) -> np.ndarray:
    """The image at `path`, or the first frame of the video there (BGR)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is not None:
        return image
    capture = cv2.VideoCapture(str(path))
    ok, frame = capture.read()
    capture.release()
    if not ok:
        raise RuntimeError(f"cannot read an image or a video frame from {path}")
    return frame


def tile(image: np.ndarray, points: np.ndarray, label: str) -> np.ndarray:
    """The mouth region of `image`, enlarged to TILE_WIDTH, with `label` written on it."""
    frame = mouth_frame(points)
    cx, cy = frame.centre
    half_w, half_h = CROP_WIDTH * frame.scale / 2, CROP_HEIGHT * frame.scale / 2
    m = np.float32([[1, 0, half_w - cx], [0, 1, half_h * 0.8 - cy]])
    crop = cv2.warpAffine(image, m, (int(2 * half_w), int(2 * half_h)), borderMode=cv2.BORDER_REPLICATE)
    height = int(TILE_WIDTH * half_h / half_w)
    big = cv2.resize(crop, (TILE_WIDTH, height), interpolation=cv2.INTER_CUBIC)
    cv2.putText(big, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 255), 1, cv2.LINE_AA)
    return big


def sheet(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Every opening of OPENINGS at every rounding of ROUNDINGS, SHEET_COLUMNS tiles a row."""
    tiles = [tile(reshape_mouth(image.copy(), points, opening, rounding), points,
                  f"open {opening:.1f} round {rounding:.1f}")
             for rounding in ROUNDINGS for opening in OPENINGS]
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % SHEET_COLUMNS)
    rows = [np.hstack(tiles[i:i + SHEET_COLUMNS]) for i in range(0, len(tiles), SHEET_COLUMNS)]
    return np.vstack(rows)


def time_per_call(image: np.ndarray, points: np.ndarray, opening: float = 1.0) -> tuple[float, float]:
    """Milliseconds one `paint_interior` takes on this face at `opening`: the quickest of
    TIMING_CALLS single calls (the cost on an idle CPU) and their median."""
    plan = plan_mouth(points, opening, 0.0)
    colours = mouth_colours(image, points)
    contour = plan.target_points[list(INNER_CONTOUR)]
    margin = int(plan.frame.scale * 0.3)
    x0, y0 = np.maximum(contour.min(0).astype(int) - margin, 0)
    x1, y1 = contour.max(0).astype(int) + margin
    roi = image[y0:y1, x0:x1].copy()
    times = []
    for _ in range(TIMING_CALLS):
        start = time.perf_counter()
        paint_interior(roi, plan, (int(x0), int(y0)), colours.lips, colours.teeth)
        times.append(time.perf_counter() - start)
    return min(times) * 1000, float(np.median(times)) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="an image or a video (its first frame)")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--upscale", type=float, default=1.0, help="scale the image first")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    image = first_frame(args.source)
    if args.upscale != 1.0:
        image = cv2.resize(image, None, fx=args.upscale, fy=args.upscale, interpolation=cv2.INTER_CUBIC)
    with FaceTracker() as tracker:
        face = tracker.track(image)
    if face is None:
        log.error("no face in %s", args.source)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), sheet(image, face.points))
    quickest, median = time_per_call(image, face.points)
    log.info("%s: eye distance %.0f px, paint_interior %.2f ms a call (median %.2f), sheet %s",
             args.source.name, face.eye_distance, quickest, median, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
