"""Every setting, read from environment variables when asked for (never at import)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORKSPACE = Path("/root/workspace")
LOG_FILE_NAME = "运行实时日志.log"
# On top of `veryfast`: diamond motion search, the quickest sub-pixel refinement and intra-only
# partition analysis. On a real 720x1280 talking clip at CRF 18 that halved the encoder's CPU
# (about 13 vs 23 ms a frame) for a 6 % larger file and PSNR 47.6 instead of 47.8 dB.
X264_PARAMS = "me=dia:subme=1:partitions=i8x8,i4x4"
# One decoder thread costs ~20 % less CPU than several and still decodes 720p at ~250 fps: on a
# small machine that CPU is better spent rendering; on a big one let ffmpeg choose (0).
DECODE_THREADS = 1 if (os.cpu_count() or 1) <= 4 else 0


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
    encode_x264_params: str = X264_PARAMS        # extra libx264 options ("" = the preset's own)
    decode_threads: int = DECODE_THREADS         # ffmpeg decoder threads (0: ffmpeg chooses)
    progress_interval_s: float = 0.25            # throttle for frame-level progress callbacks
    cancel_check_frames: int = 4                 # check the cancel flag at least this often
    host: str = "127.0.0.1"
    port: int = 7860
    max_batch_items: int = 100                   # items per batch
    max_upload_bytes: int = 4 * 1024**3          # per uploaded file
    max_request_bytes: int = 32 * 1024**3        # per upload request (HEYGEM_MAX_REQUEST_MB; default: 8 files
                                                 # at the per-file limit)
    inprocess_workers: int = 1                   # render threads of the worker the app starts (0: none;
                                                 # run `python -m heygem_core worker` yourself)
    worker_restart_s: float = 1.0                # a dead worker the app started is started again after this
                                                 # (doubled after each death within a minute of its start)
    worker_restart_max_s: float = 30.0           # and at most this long
    lease_ttl_s: float = 10.0                    # a process whose lease (heartbeat) is this old counts as dead
                                                 # and its items are queued again; renewed every fifth of it
    log_max_bytes: int = 20 * 1024**2            # the real-time log rotates at this size
    log_backups: int = 5
    auth: str = ""                               # HEYGEM_AUTH: user:password[,user2:password2]; "" = no login
    auth_secret: str = ""                        # HEYGEM_AUTH_SECRET: signs bearer tokens; "": a random one kept
                                                 # in <workspace>/auth.json (mode 0600)
    token_ttl_s: float = 12 * 3600.0             # HEYGEM_TOKEN_TTL_HOURS: how long a bearer token is valid
    redis_url: str = ""                          # HEYGEM_REDIS_URL: redis://host:6379/0 shares store + queue; "" = SQLite
    output_dir: Path | None = None               # HEYGEM_OUTPUT_DIR (shared storage when scaled out); None: workspace/outputs
    wav2lip_checkpoint: str = ""                 # name in checkpoints_dir or a path; "": wav2lip_gan.pth, else
                                                 # wav2lip.pth
    wav2lip_batch_size: int = 0                  # frames per forward pass; 0: 128 on CUDA, 32 on CPU
    wav2lip_precision: str = "auto"              # auto (fp16 on CUDA, bf16 on CPUs with native bf16) | fp32 |
                                                 # fp16 | bf16
    wav2lip_pads: tuple[int, int, int, int] = (0, 10, 0, 0)  # px added to the face box: top, bottom, left,
                                                             # right (the official order and values)
    wav2lip_smooth_frames: int = 5               # face boxes smoothed over this many frames (official: 5)
    webhook_secret: str = ""                     # HEYGEM_WEBHOOK_SECRET: HMAC key of X-HeyGem-Signature; "": a
                                                 # random one kept in <workspace>/webhook_secret (mode 0600)
    webhook_attempts: int = 6                    # HEYGEM_WEBHOOK_ATTEMPTS: POSTs of one delivery before it fails
    webhook_backoff_s: float = 2.0               # HEYGEM_WEBHOOK_BACKOFF_S: wait after the first failed attempt,
                                                 # doubled after each further one (2, 4, 8, 16, 32 s)
    webhook_timeout_s: float = 10.0              # HEYGEM_WEBHOOK_TIMEOUT_S: one POST's connect + answer limit
    webhook_poll_s: float = 1.0                  # HEYGEM_WEBHOOK_POLL_S: how often due deliveries are looked for
    track_cache: bool = True                     # HEYGEM_TRACK_CACHE=0: track every video anew, keep nothing
    track_cache_dir: Path | None = None          # HEYGEM_TRACK_CACHE_DIR; None: workspace/cache/tracks
    track_cache_max_bytes: int = 2 * 1024**3     # HEYGEM_TRACK_CACHE_MAX_MB: the oldest tracks (by mtime,
                                                 # renewed on use) are removed above this
    preflight_samples: int = 8                   # HEYGEM_PREFLIGHT_SAMPLES: frames spread over a video that the
                                                 # check before queueing looks for a face on
    preflight_max_side: int = 640                # HEYGEM_PREFLIGHT_MAX_SIDE: px, sampled frames are scaled down to
                                                 # this long side before face detection
    preflight_timeout_s: float = 120.0           # HEYGEM_PREFLIGHT_TIMEOUT_S: the face sampling of one request
                                                 # gives up after this (its files say face_found null)
    speed_defaults: str = "builtin=0.8,wav2lip=2.0"  # HEYGEM_SPEED_DEFAULTS: engine=render seconds per output
                                                 # second of a 720p video, until finished items teach better
                                                 # (builtin: 28-39 fps at 720p on a 2-core CPU, README Benchmark)
    speed_samples: int = 200                     # HEYGEM_SPEED_SAMPLES: the newest finished items speed is learned
                                                 # from
    speed_refresh_s: float = 30.0                # HEYGEM_SPEED_REFRESH_S: learned speeds are read again this often
    eta_prior_s: float = 15.0                    # HEYGEM_ETA_PRIOR_S: a batch's time left trusts the per-file
                                                 # estimate as much as this many seconds of measured work
    segment_seconds: float = 15.0                # HEYGEM_SEGMENT_SECONDS: a longer render is written in segments
                                                 # of this many seconds, each committed as it completes, so a
                                                 # crashed render resumes after the last one (0: off)

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
    def webhook_secret_file(self) -> Path:
        """Where the generated webhook secret is kept when HEYGEM_WEBHOOK_SECRET is unset."""
        return self.workspace / "webhook_secret"

    @property
    def uploads_dir(self) -> Path:
        return self.workspace / "uploads"

    @property
    def outputs_dir(self) -> Path:
        """Where finished videos go: HEYGEM_OUTPUT_DIR, else workspace/outputs."""
        return self.output_dir if self.output_dir is not None else self.workspace / "outputs"

    @property
    def track_cache_path(self) -> Path:
        """Where tracked faces are kept: HEYGEM_TRACK_CACHE_DIR, else workspace/cache/tracks."""
        return self.track_cache_dir if self.track_cache_dir is not None else self.workspace / "cache" / "tracks"


def get_settings() -> Settings:
    """Read the settings from the environment now."""
    env = os.environ
    upload_mb = float(env.get("HEYGEM_MAX_UPLOAD_MB", 4096))
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
        encode_x264_params=env.get("HEYGEM_ENCODE_X264_PARAMS", X264_PARAMS).strip(),
        decode_threads=int(env.get("HEYGEM_DECODE_THREADS", DECODE_THREADS)),
        host=env.get("HEYGEM_HOST", "127.0.0.1"),
        port=int(env.get("HEYGEM_PORT", 7860)),
        max_batch_items=int(env.get("HEYGEM_MAX_BATCH_ITEMS", 100)),
        max_upload_bytes=int(upload_mb * 1024**2),
        max_request_bytes=int(float(env.get("HEYGEM_MAX_REQUEST_MB", 8 * upload_mb)) * 1024**2),
        inprocess_workers=int(env.get("HEYGEM_INPROCESS_WORKERS", 1)),
        worker_restart_s=float(env.get("HEYGEM_WORKER_RESTART_S", 1.0)),
        worker_restart_max_s=float(env.get("HEYGEM_WORKER_RESTART_MAX_S", 30.0)),
        lease_ttl_s=float(env.get("HEYGEM_LEASE_TTL_S", 10.0)),
        log_max_bytes=int(float(env.get("HEYGEM_LOG_MAX_MB", 20)) * 1024**2),
        log_backups=int(env.get("HEYGEM_LOG_BACKUPS", 5)),
        auth=env.get("HEYGEM_AUTH", ""),
        auth_secret=env.get("HEYGEM_AUTH_SECRET", ""),
        token_ttl_s=float(env.get("HEYGEM_TOKEN_TTL_HOURS", 12)) * 3600,
        redis_url=env.get("HEYGEM_REDIS_URL", "").strip(),
        output_dir=Path(env["HEYGEM_OUTPUT_DIR"]).expanduser().resolve() if env.get("HEYGEM_OUTPUT_DIR") else None,
        wav2lip_checkpoint=env.get("HEYGEM_WAV2LIP_CHECKPOINT", ""),
        wav2lip_batch_size=int(env.get("HEYGEM_WAV2LIP_BATCH_SIZE", 0)),
        wav2lip_precision=env.get("HEYGEM_WAV2LIP_PRECISION", "auto"),
        wav2lip_pads=_pads(env.get("HEYGEM_WAV2LIP_PADS", "0,10,0,0")),
        wav2lip_smooth_frames=int(env.get("HEYGEM_WAV2LIP_SMOOTH_FRAMES", 5)),
        webhook_secret=env.get("HEYGEM_WEBHOOK_SECRET", ""),
        webhook_attempts=max(1, int(env.get("HEYGEM_WEBHOOK_ATTEMPTS", 6))),
        webhook_backoff_s=float(env.get("HEYGEM_WEBHOOK_BACKOFF_S", 2.0)),
        webhook_timeout_s=float(env.get("HEYGEM_WEBHOOK_TIMEOUT_S", 10.0)),
        webhook_poll_s=float(env.get("HEYGEM_WEBHOOK_POLL_S", 1.0)),
        track_cache=_flag(env.get("HEYGEM_TRACK_CACHE", "1")),
        track_cache_dir=(Path(env["HEYGEM_TRACK_CACHE_DIR"]).expanduser().resolve()
                         if env.get("HEYGEM_TRACK_CACHE_DIR") else None),
        track_cache_max_bytes=int(float(env.get("HEYGEM_TRACK_CACHE_MAX_MB", 2048)) * 1024**2),
        preflight_samples=max(1, int(env.get("HEYGEM_PREFLIGHT_SAMPLES", 8))),
        preflight_max_side=max(64, int(env.get("HEYGEM_PREFLIGHT_MAX_SIDE", 640))),
        preflight_timeout_s=float(env.get("HEYGEM_PREFLIGHT_TIMEOUT_S", 120.0)),
        speed_defaults=env.get("HEYGEM_SPEED_DEFAULTS", "builtin=0.8,wav2lip=2.0"),
        speed_samples=max(1, int(env.get("HEYGEM_SPEED_SAMPLES", 200))),
        speed_refresh_s=float(env.get("HEYGEM_SPEED_REFRESH_S", 30.0)),
        eta_prior_s=max(0.0, float(env.get("HEYGEM_ETA_PRIOR_S", 15.0))),
        segment_seconds=max(0.0, float(env.get("HEYGEM_SEGMENT_SECONDS", 15.0))),
    )


def _flag(value: str) -> bool:
    """An on/off variable: 0, false, no and off (any case) are off, anything else on."""
    return value.strip().lower() not in ("0", "false", "no", "off")


def _pads(value: str) -> tuple[int, int, int, int]:
    """`HEYGEM_WAV2LIP_PADS`: four integers "top,bottom,left,right" (the official order)."""
    parts = [int(v) for v in value.replace(" ", ",").split(",") if v]
    if len(parts) != 4:
        raise ValueError(f"HEYGEM_WAV2LIP_PADS={value!r}: give four integers top,bottom,left,right")
    return parts[0], parts[1], parts[2], parts[3]


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
