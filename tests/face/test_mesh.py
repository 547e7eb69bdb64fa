"""MediaPipe's graphs: landmarks read from wire bytes, and nothing printed to stderr."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from heygem_core import face as fm
from heygem_core.face import mesh

ROOT = Path(__file__).resolve().parents[2]


def test_landmarks_read_from_wire_bytes_match_their_attributes() -> None:
    from mediapipe.framework.formats import landmark_pb2

    rng = np.random.default_rng(3)
    xyz = rng.uniform(-0.2, 1.2, (fm.N_LANDMARKS, 3)).astype(np.float32)
    plain = landmark_pb2.NormalizedLandmarkList()
    for x, y, z in xyz:
        plain.landmark.add(x=x, y=y, z=z)
    np.testing.assert_array_equal(mesh.landmark_xy(plain), xyz[:, :2])
    odd = landmark_pb2.NormalizedLandmarkList()
    odd.CopyFrom(plain)
    odd.landmark[7].visibility = 0.5  # another layout: read attribute by attribute
    np.testing.assert_array_equal(mesh.landmark_xy(odd), xyz[:, :2])


def test_tracking_prints_nothing_to_stderr() -> None:
    """MediaPipe's native logs go to fd 2; none of them may reach the console or the worker log."""
    script = textwrap.dedent("""
        import cv2, numpy as np
        from skimage import data
        from heygem_core.face import FaceTracker, detect_landmarks
        face = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
        small = np.full((720, 1280, 3), 90, np.uint8)
        small[100:612, 300:812] = face
        with FaceTracker() as tracker:
            found = [tracker.track(f) is not None for f in (face, face, small * 0, small, small)]
            tracker.reset()
            found.append(tracker.track(face) is not None)
        found.append(detect_landmarks(small) is not None)
        print(found)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[True, True, False, True, True, True, True]"
    assert result.stderr == ""


def test_preload_imports_mediapipe_in_the_background_silently() -> None:
    """A worker starts the import while it waits for items: the tracker then finds it done."""
    script = textwrap.dedent("""
        import sys
        from heygem_core.face import mesh
        assert "mediapipe.python.solutions.face_mesh" not in sys.modules
        mesh.preload()
        mesh.preload()  # once per process
        assert len(mesh._preloading) == 1
        mesh._preloading[0].join(60)
        print("mediapipe.python.solutions.face_mesh" in sys.modules)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=90)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
    assert result.stderr == ""
