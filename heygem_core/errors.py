"""One error type for everything a user can cause, with a stable code and two languages."""

from __future__ import annotations

from enum import Enum


class ErrorCode(str, Enum):
    """Stable error codes: shown to users, stored with failed items, matched by tests."""

    AUDIO_UNREADABLE = "audio_unreadable"
    AUDIO_TOO_SHORT = "audio_too_short"
    AUDIO_TOO_LONG = "audio_too_long"
    AUDIO_SILENT = "audio_silent"
    VIDEO_UNREADABLE = "video_unreadable"
    VIDEO_TOO_LARGE = "video_too_large"
    NO_FACE = "no_face"
    ENGINE_UNAVAILABLE = "engine_unavailable"
    CHECKPOINT_INVALID = "checkpoint_invalid"
    OUTPUT_FAILED = "output_failed"
    CANCELLED = "cancelled"
    BATCH_INVALID = "batch_invalid"
    FILE_TOO_LARGE = "file_too_large"
    NOT_FOUND = "not_found"
    REQUEST_INVALID = "request_invalid"
    WEBHOOK_INVALID = "webhook_invalid"
    BAD_FACE_CHOICE = "bad_face_choice"
    INTERNAL = "internal_error"


# code -> (Chinese, English)
MESSAGES: dict[ErrorCode, tuple[str, str]] = {
    ErrorCode.AUDIO_UNREADABLE: ("无法读取音频文件", "The audio file cannot be read"),
    ErrorCode.AUDIO_TOO_SHORT: ("音频太短(至少 0.2 秒)", "The audio is too short (0.2 s at least)"),
    ErrorCode.AUDIO_TOO_LONG: ("音频太长,超过了时长上限", "The audio is longer than the allowed limit"),
    ErrorCode.AUDIO_SILENT: ("音频中没有声音", "The audio is silent"),
    ErrorCode.VIDEO_UNREADABLE: ("无法读取视频文件", "The video file cannot be read"),
    ErrorCode.VIDEO_TOO_LARGE: ("视频太大,超过了上限", "The video is larger than the allowed limit"),
    ErrorCode.NO_FACE: ("视频中没有检测到人脸", "No face was found in the video"),
    ErrorCode.ENGINE_UNAVAILABLE: ("所选的口型引擎不可用", "The chosen lip-sync engine is not available"),
    ErrorCode.CHECKPOINT_INVALID: ("模型文件无效", "The model checkpoint is invalid"),
    ErrorCode.OUTPUT_FAILED: ("无法写出结果视频", "The output video could not be written"),
    ErrorCode.CANCELLED: ("任务已取消", "The job was cancelled"),
    ErrorCode.BATCH_INVALID: ("无法创建批量任务", "The batch cannot be made"),
    ErrorCode.FILE_TOO_LARGE: ("上传的文件太大", "An uploaded file is too large"),
    ErrorCode.NOT_FOUND: ("没有找到", "Not found"),
    ErrorCode.REQUEST_INVALID: ("请求格式不正确", "The request is malformed"),
    ErrorCode.WEBHOOK_INVALID: ("回调地址无效(只接受 http:// 或 https:// 地址)",
                                "The webhook URL is invalid (only http:// and https:// URLs are accepted)"),
    ErrorCode.BAD_FACE_CHOICE: ("人脸选择无效(一个点、一个框或一张含人脸的参考照片)",
                                "The face choice is invalid (a point, a box, or a reference photo with a face)"),
    ErrorCode.INTERNAL: ("内部错误,详情见运行日志", "Internal error; the run log has the details"),
}


class HeyGemError(Exception):
    """A failure a user can cause or fix: a stable `code`, a message in Chinese and English,
    and an optional `detail` (a file name, what a tool said)."""

    def __init__(self, code: ErrorCode | str, detail: str = "") -> None:
        self.code = ErrorCode(code)
        self.detail = detail
        super().__init__(self.message_en)

    @property
    def message_zh(self) -> str:
        return _with_detail(MESSAGES[self.code][0], self.detail, ":")

    @property
    def message_en(self) -> str:
        return _with_detail(MESSAGES[self.code][1], self.detail, ": ")

    @property
    def message(self) -> str:
        """Both languages, Chinese first, for logs and the CLI."""
        return f"{self.message_zh} / {self.message_en}"

    def to_dict(self) -> dict[str, str]:
        """The JSON form used by the API and stored with a failed item."""
        return {"error_code": self.code.value, "message": self.message,
                "message_zh": self.message_zh, "message_en": self.message_en}

    def __str__(self) -> str:
        return f"[{self.code.value}] {self.message}"


def _with_detail(text: str, detail: str, sep: str) -> str:
    return f"{text}{sep}{detail}" if detail else text


def halves(message: str) -> tuple[str, str]:
    """The Chinese and the English half of a two-language `HeyGemError.message` ("中文 / English");
    a message in one language only is both halves."""
    zh, sep, en = message.partition(" / ")
    return (zh, en) if sep else (message, message)
