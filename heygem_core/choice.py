"""The user's choice of face for a video with several: the record stored with an item and sent
through the API. Pure data (no image libraries), so the web process can check it; the picking
itself is in `heygem_core.face.choice`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from heygem_core.errors import ErrorCode, HeyGemError

IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"RIFF")  # JPEG, PNG, BMP, WebP (RIFF)


@dataclass(frozen=True)
class FaceChoice:
    """The user's choice of face for one video (all None: the largest). Coordinates are pixels of
    the video's own frames."""

    point: tuple[float, float] | None = None  # a point on the face
    box: tuple[int, int, int, int] | None = None  # a box around the face (x0, y0, x1, y1)
    reference: str | None = None  # path of a photo of the person

    @property
    def is_default(self) -> bool:
        return self.point is None and self.box is None and self.reference is None

    def to_dict(self) -> dict:
        """Only the fields that are set (an empty dict for the default)."""
        out: dict = {}
        if self.point is not None:
            out["point"] = [float(v) for v in self.point]
        if self.box is not None:
            out["box"] = [int(v) for v in self.box]
        if self.reference is not None:
            out["reference"] = self.reference
        return out

    @classmethod
    def from_dict(cls, data: dict | None) -> FaceChoice:
        """A choice from `to_dict`'s form (or a user's JSON); a malformed one is a user error."""
        if not data:
            return cls()
        try:
            point = data.get("point")
            box = data.get("box")
            reference = data.get("reference")
            point = None if point is None else _numbers(point, 2, float)
            box = None if box is None else _numbers(box, 4, int)
        except (AttributeError, TypeError, ValueError) as e:
            raise HeyGemError(ErrorCode.BAD_FACE_CHOICE, detail=str(e)) from e
        if box is not None and (box[2] <= box[0] or box[3] <= box[1]):
            raise HeyGemError(ErrorCode.BAD_FACE_CHOICE, detail=f"empty box {box}")
        if reference is not None and not isinstance(reference, str):
            raise HeyGemError(ErrorCode.BAD_FACE_CHOICE, detail="reference must be a path")
        return cls(point, box, reference)

    @classmethod
    def parse(cls, text: str | None) -> FaceChoice:
        """A choice from JSON text ("" or None: the default)."""
        if not text or not text.strip():
            return cls()
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as e:
            raise HeyGemError(ErrorCode.BAD_FACE_CHOICE, detail=str(e)) from e

    def key(self) -> str:
        """A short stable text that tells choices apart (for the face-track cache)."""
        if self.is_default:
            return ""
        data = self.to_dict()
        if self.reference is not None:
            data["reference"] = _file_digest(Path(self.reference))
        return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _numbers(values: Sequence, n: int, kind: type) -> tuple:
    if isinstance(values, (str, bytes)) or len(values) != n:
        raise ValueError(f"expected {n} numbers, got {values!r}")
    return tuple(kind(round(float(v))) if kind is int else kind(v) for v in values)


def _file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return str(path)


def check_reference(path: str | Path) -> None:
    """A reference photo must be an image file (JPEG, PNG, BMP, WebP); whether it shows a face is
    found out by the render (which fails the item with `bad_face_choice` when it does not)."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise HeyGemError(ErrorCode.BAD_FACE_CHOICE, detail=f"cannot read the reference photo: {e}") from e
    if not any(head.startswith(magic) for magic in IMAGE_MAGIC) or (head.startswith(b"RIFF") and head[8:12] != b"WEBP"):
        raise HeyGemError(ErrorCode.BAD_FACE_CHOICE, detail=f"the reference {Path(path).name} is not a photo")
