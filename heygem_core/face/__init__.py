"""Faces: MediaPipe face-mesh `landmarks`, their temporal `smoothing`, the one-image `locator`,
the `tracker` that follows one face (the largest) through a video, and the mouth `opening` per
frame of a whole video, measured by a tracker of its own (import `heygem_core.face.opening`); the
`cache` keeps a video's tracked faces by its content hash (import `heygem_core.face.cache`)."""

from heygem_core.face.landmarks import (CHIN, FACE_OVAL, INNER_BOTTOM, INNER_TOP, LEFT_EYE_OUTER, LIPS,
                                        LIPS_INNER_LOWER, LIPS_INNER_UPPER, LIPS_OUTER_LOWER,
                                        LIPS_OUTER_UPPER, MOUTH_LEFT, MOUTH_RIGHT, N_LANDMARKS, NOSE_TIP,
                                        RIGHT_EYE_OUTER, Box, Face, eye_distance, mouth_opening)
from heygem_core.face.smoothing import OneEuroFilter
from heygem_core.face.tracker import FaceTracker, detect_landmarks

__all__ = ["CHIN", "FACE_OVAL", "INNER_BOTTOM", "INNER_TOP", "LEFT_EYE_OUTER", "LIPS", "LIPS_INNER_LOWER",
           "LIPS_INNER_UPPER", "LIPS_OUTER_LOWER", "LIPS_OUTER_UPPER", "MOUTH_LEFT", "MOUTH_RIGHT",
           "N_LANDMARKS", "NOSE_TIP", "RIGHT_EYE_OUTER", "Box", "Face", "FaceTracker", "OneEuroFilter",
           "detect_landmarks", "eye_distance", "mouth_opening"]
