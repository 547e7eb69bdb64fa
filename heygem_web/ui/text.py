"""The studio's words in Chinese (default) and English."""

from __future__ import annotations

from heygem_core.jobs import rules

LANGS = {"中文": "zh", "English": "en"}
DEFAULT_LANG = "中文"
TEXT: dict[str, dict[str, str]] = {
    "title": {"zh": "HeyGem 批量口型同步", "en": "HeyGem batch lip-sync"},
    "tab_batch": {"zh": "批量生成", "en": "Batch"},
    "tab_single": {"zh": "单个视频", "en": "Single"},
    "tab_localise": {"zh": "多语言版本", "en": "Localise"},
    "tab_history": {"zh": "历史记录", "en": "History"},
    "audio": {"zh": "音频(一段讲稿)", "en": "Audio (one speech track)"},
    "audios": {"zh": "多个音频(每个生成一个版本)", "en": "Audios (one version each)"},
    "videos": {"zh": "视频(可多选,开始前可移除)", "en": "Videos (several; remove before start)"},
    "video": {"zh": "视频或照片", "en": "Video or photo"},
    "preview": {"zh": "预览", "en": "Preview"},
    "engine": {"zh": "口型引擎", "en": "Lip-sync engine"},
    "start": {"zh": "开始批量生成", "en": "Start batch"},
    "start_single": {"zh": "开始生成", "en": "Start"},
    "cancel": {"zh": "取消", "en": "Cancel"},
    "retry": {"zh": "重试失败的文件", "en": "Retry failed files"},
    "refresh": {"zh": "刷新", "en": "Refresh"},
    "open": {"zh": "打开", "en": "Open"},
    "pick_batch": {"zh": "选择批次", "en": "Pick a batch"},
    "system": {"zh": "系统状态", "en": "System"},
    "log": {"zh": "运行实时日志", "en": "Live log"},
    "results": {"zh": "生成结果", "en": "Results"},
    "download": {"zh": "下载", "en": "Download"},
    "zip": {"zh": "打包下载", "en": "Download all (ZIP)"},
    "manifest": {"zh": "结果清单 (CSV)", "en": "Manifest (CSV)"},
    "idle": {"zh": "还没有任务:上传音频和视频,然后点击“开始批量生成”。",
             "en": "No batch yet: upload an audio and videos, then press Start."},
    "current": {"zh": "当前视频", "en": "Now making"},
    "frames": {"zh": "第 {done} 帧 / 共 {total} 帧", "en": "frame {done} / {total}"},
    "eta": {"zh": "剩余时间", "en": "Time left"},
    "file": {"zh": "文件", "en": "File"},
    "status": {"zh": "状态", "en": "Status"},
    "frame_col": {"zh": "帧", "en": "Frames"},
    "duration": {"zh": "耗时", "en": "Took"},
    "reason": {"zh": "原因", "en": "Reason"},
    "need_inputs": {"zh": "请先上传音频和至少一个视频", "en": "Upload an audio and at least one video first"},
    "ended": {"zh": "批量任务结束:{ok} 个成功,{bad} 个失败", "en": "Batch ended: {ok} done, {bad} failed"},
    "disconnected": {"zh": "连接中断,正在重试…", "en": "Connection lost, retrying…"},
    "available": {"zh": "可用", "en": "available"},
    "unavailable": {"zh": "不可用", "en": "unavailable"},
    "cpu": {"zh": "CPU", "en": "CPU"},
    "memory": {"zh": "内存", "en": "Memory"},
    "gpu": {"zh": "GPU", "en": "GPU"},
    "no_gpu": {"zh": "没有检测到 GPU", "en": "no GPU detected"},
    "created": {"zh": "创建时间", "en": "Created"},
    "check": {"zh": "检查", "en": "Check"},
    "check_ok": {"zh": "可以生成", "en": "ok"},
    "check_fail": {"zh": "将会失败", "en": "will fail"},
    "length": {"zh": "时长", "en": "Length"},
    "fps": {"zh": "帧率", "en": "fps"},
    "faces": {"zh": "人脸", "en": "Faces"},
    "estimate": {"zh": "预计耗时", "en": "Est. time"},
    "check_total": {"zh": "预计总耗时 {time}({ok}/{n} 个文件可以生成)",
                    "en": "Estimated total {time} ({ok} of {n} files ok)"},
    "check_failed": {"zh": "无法检查文件:{error}", "en": "The files could not be checked: {error}"},
    "items": {"zh": "文件数", "en": "Files"},
}


def t(lang: str, key: str, **fields: object) -> str:
    """The text `key` in the language picked on the page."""
    text = TEXT[key][LANGS.get(lang, "zh")]
    return text.format(**fields) if fields else text


def status_word(lang: str, status: str) -> str:
    """A batch's or an item's status in the language picked on the page."""
    return rules.status_word(status, LANGS.get(lang, "zh"))


def eta_text(lang: str, seconds: int | None) -> str:
    if seconds is None:
        return "—"
    minutes, secs = divmod(int(seconds), 60)
    if LANGS.get(lang, "zh") == "zh":
        return f"约 {minutes} 分 {secs} 秒" if minutes else f"约 {secs} 秒"
    return f"about {minutes} min {secs} s" if minutes else f"about {secs} s"
