"""Whether Wav2Lip can run here, without loading it: its checkpoint in `checkpoints/`, torch, and
the device asked for. Light on purpose (torch is imported only to check a CUDA device), so that
the API can list the engines without the render stack."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from heygem_core.config import Settings
from heygem_core.engines.base import EngineStatus
from heygem_core.errors import ErrorCode, HeyGemError

NAME = "wav2lip"
LABEL = "Wav2Lip (checkpoints/wav2lip_gan.pth or wav2lip.pth)"
CHECKPOINT_NAMES = ("wav2lip_gan.pth", "wav2lip.pth")  # preference order: the GAN one looks sharper
TORCHLESS_DEVICES = ("auto", "cpu")  # devices that are always usable: no need to ask torch


def engine_status(settings: Settings) -> EngineStatus:
    """Available when torch is installed, a checkpoint is found and the device exists."""
    if importlib.util.find_spec("torch") is None:
        return EngineStatus(NAME, LABEL, False, "未安装 torch / torch is not installed")
    if find_checkpoint(settings) is None:
        return EngineStatus(NAME, LABEL, False, missing_reason(settings))
    if settings.device not in TORCHLESS_DEVICES:
        try:
            device_name(settings.device)
        except HeyGemError as e:
            return EngineStatus(NAME, LABEL, False, e.detail)
    return EngineStatus(NAME, LABEL, True)


def find_checkpoint(settings: Settings) -> Path | None:
    """The checkpoint to load: `settings.wav2lip_checkpoint` when set (a name in checkpoints_dir
    or a path), else the first of wav2lip_gan.pth, wav2lip.pth that exists."""
    if settings.wav2lip_checkpoint:
        path = Path(settings.wav2lip_checkpoint)
        path = path if path.is_absolute() else settings.checkpoints_dir / path
        return path if path.is_file() else None
    for name in CHECKPOINT_NAMES:
        path = settings.checkpoints_dir / name
        if path.is_file():
            return path
    return None


def missing_reason(settings: Settings) -> str:
    if settings.wav2lip_checkpoint:
        return f"缺少 {settings.wav2lip_checkpoint} / checkpoint not found in {settings.checkpoints_dir}"
    return (f"缺少 checkpoints/{CHECKPOINT_NAMES[0]} 或 {CHECKPOINT_NAMES[1]} / "
            f"no checkpoint in {settings.checkpoints_dir}")


def device_name(setting: str) -> str:
    """`auto` -> cuda when torch sees a GPU, else cpu; `cpu`; `cuda` or `cuda:N` when present."""
    import torch

    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if setting == "cpu":
        return "cpu"
    kind, _, index = setting.partition(":")
    if kind == "cuda" and (index.isdigit() or not index):
        if not torch.cuda.is_available() or int(index or 0) >= torch.cuda.device_count():
            raise HeyGemError(ErrorCode.ENGINE_UNAVAILABLE, f"device {setting}: torch sees no such CUDA device")
        return setting
    raise HeyGemError(ErrorCode.ENGINE_UNAVAILABLE, f"device {setting!r}: choose auto, cpu or cuda:N")
