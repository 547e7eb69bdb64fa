"""The Wav2Lip engine: the official network and inference on the tracked face, batched on CPU or
CUDA, pasted back with a feathered lower-face mask whose colour matches the frame at the seam.

torch is imported only when the engine is built, so the rest of the package never pays for it."""

from __future__ import annotations

import copy
import logging
from collections import deque
from collections.abc import Sequence

import cv2
import librosa
import numpy as np

from heygem_core.config import Settings
from heygem_core.engines.base import EngineStatus, FrameJob, LipSyncEngine
from heygem_core.engines.wav2lip.checkpoint import (LABEL, NAME, device_name, engine_status, find_checkpoint,
                                                    missing_reason)
from heygem_core.errors import ErrorCode, HeyGemError
from heygem_core.face.landmarks import Face
from heygem_core.media.audio import SAMPLE_RATE, AudioClip, mel_window, melspectrogram

logger = logging.getLogger(__name__)

FACE_SIZE = 96  # px, the network's crop side
MIN_BOX_PX = 8  # a smaller face box passes the frame through unchanged
CPU_BATCH = 32  # frames per forward pass on CPU (bigger gains nothing there)
CUDA_BATCH = 128  # frames per forward pass on CUDA, the official default
SEAM_SIGMA = 10.0  # px at 96x96: how far the colour correction measured at the seam spreads


def _lower_face_mask() -> np.ndarray:
    """Float mask (96, 96): 1 over mouth, chin and cheeks, 0 along the crop's border and above
    the nose, with a soft edge about 6 px (at 96) wide."""
    mask = np.zeros((FACE_SIZE, FACE_SIZE), np.uint8)
    cv2.ellipse(mask, (48, 67), (36, 21), 0, 0, 360, 255, -1)
    mask = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7)))
    return cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), 3.0)


MASK = _lower_face_mask()
SEAM = 4.0 * MASK * (1.0 - MASK)  # weight of the feathered band, peak 1 where the mask is 0.5


class Wav2LipEngine(LipSyncEngine):
    """Wav2Lip (Prajwal et al. 2020) with the public checkpoints from `checkpoints/`."""

    name = NAME
    label = LABEL

    def __init__(self, settings: Settings) -> None:
        import torch

        from heygem_core.engines.wav2lip.model import load_model

        self.settings = settings
        self.device = torch.device(device_name(settings.device))
        self.dtype = _dtype(settings.wav2lip_precision, self.device)
        self.checkpoint = find_checkpoint(settings)
        if self.checkpoint is None:
            raise HeyGemError(ErrorCode.CHECKPOINT_INVALID, missing_reason(settings))
        model = load_model(self.checkpoint, "cpu")
        self.model = model.to(self.device, self.dtype, memory_format=torch.channels_last)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        default_batch = CUDA_BATCH if self.device.type == "cuda" else CPU_BATCH
        self.batch_size = settings.wav2lip_batch_size or default_batch
        self._boxes = BoxSmoother(settings.wav2lip_smooth_frames)
        self._mel = np.zeros((80, 16), np.float32)
        self._fps = 25.0
        logger.info("wav2lip: %s on %s (%s, batch %d)", self.checkpoint.name, self.device,
                    str(self.dtype).removeprefix("torch."), self.batch_size)

    @classmethod
    def status(cls, settings: Settings) -> EngineStatus:
        return engine_status(settings)

    def start(self, clip: AudioClip, fps: float, n_frames: int) -> None:
        samples = clip.samples
        if clip.sample_rate != SAMPLE_RATE:
            samples = librosa.resample(samples, orig_sr=clip.sample_rate, target_sr=SAMPLE_RATE)
        self._mel = melspectrogram(samples)
        self._fps = fps
        self._boxes.reset()

    def checkpoint(self) -> object:
        return copy.deepcopy(self._boxes)

    def restore(self, states: Sequence[object]) -> None:
        if states and isinstance(states[-1], BoxSmoother):
            self._boxes = copy.deepcopy(states[-1])

    def render_batch(self, jobs: Sequence[FrameJob]) -> list[np.ndarray]:
        crops, mels, placed = [], [], []
        for job in jobs:
            box = self._box(job)
            if box is None:
                continue
            x0, y0, x1, y1 = box
            crops.append(cv2.resize(job.image[y0:y1, x0:x1], (FACE_SIZE, FACE_SIZE)))
            mels.append(mel_window(self._mel, job.index, self._fps))
            placed.append((job.image, box))
        if crops:
            faces = np.stack(crops)
            for (image, box), face, pred in zip(placed, faces, self.predict(faces, np.stack(mels))):
                paste(image, box, face, pred)
        return [job.image for job in jobs]

    def predict(self, faces: np.ndarray, mels: np.ndarray) -> np.ndarray:
        """(B, 96, 96, 3) BGR uint8 crops and (B, 80, 16) mel windows -> (B, 96, 96, 3) float32
        BGR in [0, 255], exactly as the official inference prepares and reads the network."""
        import torch

        masked = faces.copy()
        masked[:, FACE_SIZE // 2:] = 0
        x = np.concatenate([masked, faces], axis=3).astype(np.float32) / 255.0
        with torch.inference_mode():
            face_t = torch.from_numpy(x).permute(0, 3, 1, 2)  # (B, 6, 96, 96), channels-last in memory
            mel_t = torch.from_numpy(np.ascontiguousarray(mels, np.float32))[:, None]  # (B, 1, 80, 16)
            out = self.model(mel_t.to(self.device, self.dtype), face_t.to(self.device, self.dtype))
            out = out.permute(0, 2, 3, 1).float().mul_(255.0).cpu().numpy()
        return out

    def _box(self, job: FrameJob) -> tuple[int, int, int, int] | None:
        """The smoothed, padded face box in pixels, or None for a frame to pass through."""
        if job.face is None:
            self._boxes.reset()
            return None
        smoothed = self._boxes.push(face_box(job.face))
        top, bottom, left, right = self.settings.wav2lip_pads
        h, w = job.image.shape[:2]
        x0 = int(round(max(0.0, smoothed[0] - left)))
        y0 = int(round(max(0.0, smoothed[1] - top)))
        x1 = int(round(min(float(w), smoothed[2] + right)))
        y1 = int(round(min(float(h), smoothed[3] + bottom)))
        if x1 - x0 < MIN_BOX_PX or y1 - y0 < MIN_BOX_PX:
            return None
        return x0, y0, x1, y1

    def close(self) -> None:
        self.model = None


class BoxSmoother:
    """Streaming version of the official mean over 5 boxes: the box size is the mean of the last
    `window` sizes; the centre is a straight line fitted to the last `window` centres, read at
    the newest frame, which steadies it as much without trailing a moving head."""

    def __init__(self, window: int = 5) -> None:
        self._history: deque[np.ndarray] = deque(maxlen=max(1, window))

    def reset(self) -> None:
        self._history.clear()

    def push(self, box: np.ndarray) -> np.ndarray:
        self._history.append(np.asarray(box, np.float64))
        boxes = np.array(self._history)
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        sizes = (boxes[:, 2:] - boxes[:, :2]).mean(axis=0)
        n = len(boxes)
        t = np.arange(n) - (n - 1) / 2
        slope = (t[:, None] * centres).sum(0) / max((t**2).sum(), 1e-9)
        centre = centres.mean(0) + slope * (n - 1) / 2
        return np.concatenate([centre - sizes / 2, centre + sizes / 2])


def face_box(face: Face) -> np.ndarray:
    """x0, y0, x1, y1 of the face mesh: the stand-in for the official detector's box."""
    points = face.points
    return np.concatenate([points.min(axis=0), points.max(axis=0)]).astype(np.float64)


def paste(image: np.ndarray, box: tuple[int, int, int, int], face: np.ndarray, pred: np.ndarray) -> None:
    """Blend the generated 96x96 face into `image` in place over the lower face only, after
    shifting its colour to agree with the source along the mask's soft edge."""
    x0, y0, x1, y1 = box
    diff = face.astype(np.float32) - pred
    weight = cv2.GaussianBlur(SEAM, (0, 0), SEAM_SIGMA) + 1e-3
    spread = cv2.GaussianBlur(diff * SEAM[..., None], (0, 0), SEAM_SIGMA)
    mean = (diff * SEAM[..., None]).sum((0, 1)) / SEAM.sum()
    corrected = pred + (spread + 1e-3 * mean) / weight[..., None]
    size = (x1 - x0, y1 - y0)
    generated = np.clip(cv2.resize(corrected, size), 0, 255).astype(np.uint8)
    mask = cv2.resize(MASK, size)
    roi = image[y0:y1, x0:x1]
    roi[:] = cv2.blendLinear(generated, roi, mask, 1.0 - mask)


def _dtype(precision: str, device: "torch.device") -> "torch.dtype":  # noqa: F821
    """`fp32`, `fp16` (CUDA only), `bf16`, or `auto`: fp16 on CUDA, bf16 on a CPU with native
    bf16 (AMX or AVX-512 BF16: three times faster), else fp32."""
    import torch

    choices = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if precision == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if torch.backends.mkldnn.is_available() and _cpu_has_bf16() else torch.float32
    if precision not in choices:
        raise HeyGemError(ErrorCode.ENGINE_UNAVAILABLE,
                          f"wav2lip precision {precision!r}: choose auto, fp32, fp16 or bf16")
    if precision == "fp16" and device.type != "cuda":
        return torch.float32  # half convolutions on CPU are slow; fp16 is a CUDA option
    return choices[precision]


def _cpu_has_bf16() -> bool:
    """Native bf16 arithmetic (AMX or AVX-512 BF16); elsewhere oneDNN only emulates it."""
    import torch

    try:
        return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    except AttributeError:  # private helpers: absent in some torch releases
        return False
