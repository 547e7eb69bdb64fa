"""Every setting, read from environment variables when asked for (never at import)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORKSPACE = Path("/root/workspace")
LOG_FILE_NAME = "运行实时日志.log"


@dataclass(frozen=True)
class Settings:
    """All tunables of the studio; build with `get_settings()`."""

    workspace: Path = DEFAULT_WORKSPACE          # jobs, uploads, outputs, the live log
    checkpoints_dir: Path = PROJECT_ROOT / "checkpoints"  # wav2lip.pth / wav2lip_gan.pth
    default_engine: str = "auto"                 # auto | builtin | wav2lip
    device: str = "auto"                         # auto | cpu | cuda:N
    min_audio_seconds: float = 0.2               # shorter audio fails with audio_too_short
    max_audio_seconds: float = 30 * 60.0         # longer audio fails with audio_too_long
    silence_dbfs: float = -60.0                  # audio whose loudest 50 ms is below this is silent
    max_video_bytes: int = 4 * 1024**3           # bigger files fail with video_too_large
    max_video_pixels: int = 4096 * 4096          # width * height limit
    max_video_seconds: float = 60 * 60.0         # longer videos fail with video_too_large
    encode_preset: str = "veryfast"              # libx264 preset
    encode_crf: int = 18                         # libx264 quality (lower is better)
    progress_interval_s: float = 0.25            # throttle for frame-level progress callbacks
    cancel_check_frames: int = 4                 # check the cancel flag at least this often
    host: str = "127.0.0.1"
    port: int = 7860
    max_batch_items: int = 100                   # items per batch
    max_upload_bytes: int = 4 * 1024**3          # per uploaded file
    inprocess_workers: int = 1                   # render threads of the worker the app starts (0: none;
                                                 # run `python -m heygem_core worker` yourself)
    log_max_bytes: int = 20 * 1024**2            # the real-time log rotates at this size
    log_backups: int = 5
    auth: str = ""                               # HEYGEM_AUTH: user:password[,user2:password2]; "" = no login

    @property
    def log_file(self) -> Path:
        return self.workspace / LOG_FILE_NAME

    @property
    def jobs_db(self) -> Path:
        return self.workspace / "jobs.db"

    @property
    def queue_db(self) -> Path:
        return self.workspace / "queue.db"

    @property
    def uploads_dir(self) -> Path:
        return self.workspace / "uploads"

    @property
    def outputs_dir(self) -> Path:
        return self.workspace / "outputs"


def get_settings() -> Settings:
    """Read the settings from the environment now."""
    env = os.environ
    return Settings(
        workspace=_workspace(env.get("HEYGEM_WORKSPACE")),
        checkpoints_dir=Path(env.get("HEYGEM_CHECKPOINTS", str(PROJECT_ROOT / "checkpoints"))),
        default_engine=env.get("HEYGEM_ENGINE", "auto"),
        device=env.get("HEYGEM_DEVICE", "auto"),
        max_audio_seconds=float(env.get("HEYGEM_MAX_AUDIO_SECONDS", 30 * 60)),
        max_video_bytes=int(float(env.get("HEYGEM_MAX_VIDEO_MB", 4096)) * 1024**2),
        max_video_seconds=float(env.get("HEYGEM_MAX_VIDEO_SECONDS", 60 * 60)),
        encode_preset=env.get("HEYGEM_ENCODE_PRESET", "veryfast"),
        encode_crf=int(env.get("HEYGEM_ENCODE_CRF", 18)),
        host=env.get("HEYGEM_HOST", "127.0.0.1"),
        port=int(env.get("HEYGEM_PORT", 7860)),
        max_batch_items=int(env.get("HEYGEM_MAX_BATCH_ITEMS", 100)),
        max_upload_bytes=int(float(env.get("HEYGEM_MAX_UPLOAD_MB", 4096)) * 1024**2),
        inprocess_workers=int(env.get("HEYGEM_INPROCESS_WORKERS", 1)),
        log_max_bytes=int(float(env.get("HEYGEM_LOG_MAX_MB", 20)) * 1024**2),
        log_backups=int(env.get("HEYGEM_LOG_BACKUPS", 5)),
        auth=env.get("HEYGEM_AUTH", ""),
    )


def _workspace(value: str | None) -> Path:
    """`HEYGEM_WORKSPACE`, else /root/workspace, else ./workspace when that cannot be written."""
    if value:
        return Path(value).expanduser().resolve()
    try:
        DEFAULT_WORKSPACE.mkdir(parents=True, exist_ok=True)
        if os.access(DEFAULT_WORKSPACE, os.W_OK):
            return DEFAULT_WORKSPACE
    except OSError:
        pass
    return (Path.cwd() / "workspace").resolve()
