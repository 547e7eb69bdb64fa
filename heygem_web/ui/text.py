"""The studio's words in Chinese and English, and which of the two a browser gets.

The language follows the browser, as Gradio's own strings do: the static labels go to the page as
`gr.I18n` translations (the browser's locale picks), the panels rendered here read the request's
Accept-Language. A Chinese browser gets an all-Chinese page, any other an all-English one."""

from __future__ import annotations

import re

from heygem_core.errors import MESSAGES, ErrorCode, halves

LANGUAGES = ("zh", "en")
DEFAULT_LANG = "en"  # what a browser that asks for neither gets (Gradio's own fallback too)
I18N_LOCALES = {"zh": ("zh", "zh-CN", "zh-TW", "zh-HK"), "en": ("en", "en-US", "en-GB")}

TEXT: dict[str, dict[str, str]] = {
    "title": {"zh": "## HeyGem 批量口型同步", "en": "## HeyGem batch lip-sync"},
    "tab_batch": {"zh": "批量生成", "en": "Batch"},
    "tab_single": {"zh": "单个视频", "en": "Single"},
    "tab_localise": {"zh": "多语言版本", "en": "Languages"},
    "tab_history": {"zh": "历史记录", "en": "History"},
    "audio": {"zh": "音频(一段讲稿)", "en": "Audio (one speech track)"},
    "audios": {"zh": "多个音频(每个生成一个版本)", "en": "Audios (one version each)"},
    "videos": {"zh": "视频(可多选,开始前可移除)", "en": "Videos (several; remove before start)"},
    "video": {"zh": "视频或照片", "en": "Video or photo"},
    "preview": {"zh": "预览", "en": "Preview"},
    "engine": {"zh": "口型引擎", "en": "Lip-sync engine"},
    "examples": {"zh": "示例:点一下即可填入", "en": "Examples: one click fills the inputs"},
    "start": {"zh": "开始批量生成", "en": "Start batch"},
    "start_single": {"zh": "开始生成", "en": "Start"},
    "cancel": {"zh": "取消", "en": "Cancel"},
    "retry": {"zh": "重试失败和取消的文件", "en": "Retry failed and cancelled files"},
    "search": {"zh": "搜索文件名", "en": "Search file name"},
    "period": {"zh": "创建日期", "en": "Created"},
    "period_any": {"zh": "全部日期", "en": "Any date"},
    "period_today": {"zh": "今天", "en": "Today"},
    "period_7d": {"zh": "最近 7 天", "en": "Last 7 days"},
    "period_30d": {"zh": "最近 30 天", "en": "Last 30 days"},
    "filter": {"zh": "按状态筛选", "en": "Filter by status"},
    "all": {"zh": "全部", "en": "All"},
    "system": {"zh": "系统状态", "en": "System"},
    "log": {"zh": "运行实时日志", "en": "Live log"},
    "log_batch": {"zh": "批次", "en": "batch"},
    "log_WARNING": {"zh": "警告", "en": "WARNING"},
    "log_ERROR": {"zh": "错误", "en": "ERROR"},
    "log_CRITICAL": {"zh": "严重错误", "en": "CRITICAL"},
    "download": {"zh": "下载", "en": "Download"},
    "zip": {"zh": "打包下载", "en": "Download all"},
    "manifest": {"zh": "结果清单表格", "en": "Manifest table"},
    "manifest_json": {"zh": "结果清单数据", "en": "Manifest data"},
    "idle": {"zh": "还没有任务:上传音频和视频(或点一个示例),然后点击“开始批量生成”。",
             "en": "No batch yet: upload an audio and videos (or pick an example), then press Start."},
    "idle_single": {"zh": "还没有任务:上传一个音频和一个视频,然后点击“开始生成”。",
                    "en": "Nothing made yet: upload an audio and a video, then press Start."},
    "idle_localise": {"zh": "还没有任务:上传一个视频和多个音频,然后点击“开始批量生成”。",
                      "en": "Nothing made yet: upload a video and several audios, then press Start batch."},
    "idle_history": {"zh": "点击上面表格中的一行,查看那一批。", "en": "Click a row above to see that batch."},
    "current": {"zh": "当前视频", "en": "Now making"},
    "current_audio": {"zh": "当前音频", "en": "Now voicing"},
    "frames": {"zh": "第 {done} 帧 / 共 {total} 帧", "en": "frame {done} of {total}"},
    "eta": {"zh": "剩余时间", "en": "Time left"},
    "estimating": {"zh": "正在估算…", "en": "estimating…"},
    "count": {"zh": "已处理 {done}/{total}", "en": "{done} of {total} processed"},
    "rejected": {"zh": "{n} 个文件无法处理,未排队", "en": "{n} file(s) could not be used and were not queued"},
    "file": {"zh": "文件", "en": "File"},
    "status": {"zh": "状态", "en": "Status"},
    "frame_col": {"zh": "帧", "en": "Frames"},
    "duration": {"zh": "耗时", "en": "Took"},
    "reason": {"zh": "原因", "en": "Reason"},
    "detail": {"zh": "详情", "en": "Details"},
    "seconds": {"zh": "{s} 秒", "en": "{s} s"},
    "need_inputs": {"zh": "请先上传音频和至少一个视频", "en": "Upload an audio and at least one video first"},
    "ended": {"zh": "批量任务结束:{ok} 个成功,{bad} 个失败,{cancelled} 个已取消",
              "en": "Batch ended: {ok} done, {bad} failed, {cancelled} cancelled"},
    "ended_single": {"zh": "生成结束", "en": "Finished"},
    "queued_toast": {"zh": "已加入队列,前面还有 {ahead} 批", "en": "Added to the queue, {ahead} batch(es) ahead"},
    "duplicate_toast": {"zh": "同样的文件已经在队列中", "en": "The same files are already in the queue"},
    "retried_toast": {"zh": "已重新排队 {n} 个文件", "en": "{n} file(s) queued again"},
    "nothing_to_retry": {"zh": "没有失败或取消的文件", "en": "No failed or cancelled files"},
    "cancelled_toast": {"zh": "已取消", "en": "Cancelled"},
    "cancel_pick": {"zh": "单个文件", "en": "One file"},
    "cancel_one": {"zh": "只取消这个文件", "en": "Cancel this file only"},
    "cancel_pick_first": {"zh": "请先在上面选一个文件", "en": "Pick a file above first"},
    "cancel_too_late": {"zh": "{s} 已经结束,无法再取消", "en": "{s} has already ended: too late to cancel"},
    "cancelled_one_toast": {"zh": "已取消:{s},其余文件继续", "en": "Cancelled: {s}; the other files go on"},
    "error_title": {"zh": "出错了", "en": "Error"},
    "info_title": {"zh": "提示", "en": "Note"},
    "toast_error": {"zh": "出错了", "en": "Error"},
    "toast_warning": {"zh": "注意", "en": "Warning"},
    "toast_info": {"zh": "提示", "en": "Note"},
    "toast_success": {"zh": "成功", "en": "Done"},
    "queue": {"zh": "队列", "en": "Queue"},
    "queue_running": {"zh": "正在生成", "en": "Running"},
    "queue_waiting": {"zh": "等待中", "en": "Waiting"},
    "queue_empty": {"zh": "队列为空", "en": "The queue is empty"},
    "face_pick": {"zh": "点击要对口型的人脸(不点则用最大的一张);点上方的缩略图换一个视频",
                  "en": "Click the face to lip-sync (default: the largest); click a thumbnail above for another video"},
    "queue_pause": {"zh": "暂停队列", "en": "Pause the queue"},
    "queue_resume": {"zh": "继续队列", "en": "Resume the queue"},
    "queue_pick": {"zh": "等待中的批次", "en": "Waiting batch"},
    "queue_front": {"zh": "移到最前", "en": "Move to the front"},
    "queue_none_waiting": {"zh": "没有等待中的批次", "en": "No batch is waiting"},
    "queue_paused": {"zh": "队列已暂停:正在生成的文件完成后不再开始新的", "en": "The queue is paused: nothing new starts after the running file"},
    "pause_toast": {"zh": "队列已暂停,正在生成的文件会完成", "en": "The queue is paused; the running file finishes"},
    "resume_toast": {"zh": "队列已继续", "en": "The queue goes on"},
    "move_to_front_toast": {"zh": "已移到队列最前", "en": "Moved to the front of the queue"},
    "files_n": {"zh": "{n} 个文件", "en": "{n} file(s)"},
    "available": {"zh": "可用", "en": "available"},
    "unavailable": {"zh": "不可用", "en": "not available here"},
    "engine_auto": {"zh": "自动(最好的可用引擎)", "en": "Automatic (the best available)"},
    "engine_wav2lip": {"zh": "Wav2Lip 模型", "en": "Wav2Lip model"},
    "engine_builtin": {"zh": "内置口型(无需模型)", "en": "Built-in (no model needed)"},
    "engine_test": {"zh": "测试引擎", "en": "Test engine"},
    "cpu": {"zh": "处理器", "en": "Processor"},
    "memory": {"zh": "内存", "en": "Memory"},
    "gpu": {"zh": "显卡", "en": "Graphics card"},
    "no_gpu": {"zh": "没有检测到显卡", "en": "none detected"},
    "created": {"zh": "创建时间", "en": "Created"},
    "items": {"zh": "完成数", "en": "Done"},
    "check": {"zh": "检查", "en": "Check"},
    "check_ok": {"zh": "可以生成", "en": "OK"},
    "check_fail": {"zh": "将会失败", "en": "Will fail"},
    "length": {"zh": "时长", "en": "Length"},
    "fps": {"zh": "帧率", "en": "Frame rate"},
    "faces": {"zh": "人脸", "en": "Faces"},
    "estimate": {"zh": "预计耗时", "en": "Est. time"},
    "check_total": {"zh": "预计总耗时 {total}({ok}/{n} 个文件可以生成)",
                    "en": "Estimated total {total} ({ok} of {n} files OK)"},
    "check_failed": {"zh": "无法检查文件:{s}", "en": "The files could not be checked: {s}"},
    "check_no_faces": {"zh": "未能检查人脸", "en": "Faces not checked"},
    "check_face_share": {"zh": "只有 {n}% 的抽样帧有人脸,其余帧保持原样",
                         "en": "A face on {n}% of the sampled frames; the others are left as they are"},
    "check_many_faces": {"zh": "一帧中有 {n} 张人脸,将对口型最大的一张",
                         "en": "{n} faces in one frame: the largest is lip-synced"},
    "offline": {"zh": "连接中断,正在重试…", "en": "Connection lost, retrying…"},
    "offline_redis": {"zh": "数据库连接中断,正在重试…", "en": "The job store is unreachable, retrying…"},
}

# What Gradio's own buttons, players and tables say in their title, aria-label, placeholder or alt:
# written in English in its frontend whatever the locale (no i18n key behind them, or a key left
# untranslated), so the page's script rewrites them (`assets.head`): per language, (a JavaScript
# regular expression matched against the whole value, its replacement with $1 for a group).
GRADIO_ATTRIBUTES: dict[str, tuple[tuple[str, str], ...]] = {
    "zh": (
        (r"^Upload (a )?file$", "上传文件"),
        (r"^common\.upload$", "上传"),
        (r"^Record audio$", "录音"),
        (r"^Click to upload or drop files$", "点击上传或拖放文件"),
        (r"^Remove this file$", "移除这个文件"),
        (r"^Download All$", "全部下载"),
        (r"^Close$", "关闭"),
        (r"^Thumbnail (\d+) of (\d+)$", "第 $1 张缩略图,共 $2 张"),
        (r"^detailed view of selected image$", "所选图片的大图"),
        (r"^Adjust volume$", "调节音量"),
        (r"^Adjust playback speed to ([\d.]+)x$", "播放速度调到 $1 倍"),
        (r"^Skip backwards by ([\d.]+) seconds$", "后退 $1 秒"),
        (r"^Skip forward by ([\d.]+) seconds$", "前进 $1 秒"),
        (r"^Reset audio$", "还原音频"),
        (r"^undo$", "撤销"),
        (r"^Trim audio to selection$", "把音频剪到所选部分"),
        (r"^Table actions$", "表格操作"),
        (r"^Select column$", "选择这一列"),
        (r"^Select row$", "选择这一行"),
        (r"^Copy table data$", "复制表格数据"),
        (r"^Copied to clipboard$", "已复制"),
        (r"^Fullscreen$", "全屏"),
        (r"^Exit fullscreen$", "退出全屏"),
        (r"^Dataframe$", "表格"),
    ),
    "en": ((r"^common\.upload$", "Upload"),),
}


def gradio_attribute(lang: str, value: str) -> str:
    """`value` as the page's script rewrites it for `lang` (the same rules, in Python)."""
    for pattern, replacement in GRADIO_ATTRIBUTES.get(lang, ()):
        if re.search(pattern, value):
            return re.sub(pattern, re.sub(r"\$(\d)", r"\\\1", replacement), value)
    return value


# Every status of a batch or an item (and "idle") as the page shows it.
STATUS_TEXT: dict[str, dict[str, str]] = {
    "idle": {"zh": "空闲", "en": "Idle"},
    "queued": {"zh": "排队中", "en": "Queued"},
    "pending": {"zh": "排队中", "en": "Waiting"},
    "processing": {"zh": "处理中", "en": "Running"},
    "completed": {"zh": "已完成", "en": "Done"},
    "done": {"zh": "已完成", "en": "Done"},
    "completed_with_errors": {"zh": "部分失败", "en": "Done, some failed"},
    "failed": {"zh": "失败", "en": "Failed"},
    "cancelled": {"zh": "已取消", "en": "Cancelled"},
}


def lang_of(accept_language: str | None) -> str:
    """"zh" when the browser's first choice is Chinese, else "en" (as Gradio's own strings fall
    back to English for a locale it has no words for)."""
    first = (accept_language or "").split(",")[0].strip().lower()
    return "zh" if first.startswith("zh") else DEFAULT_LANG


def t(lang: str, key: str, **fields: object) -> str:
    """The text `key` in `lang` ("zh" or "en")."""
    text = TEXT[key][lang if lang in LANGUAGES else DEFAULT_LANG]
    return text.format(**fields) if fields else text


def labelled(lang: str, key: str, value: str) -> str:
    """`key`'s text, a colon as the language writes it ("状态:" / "Status: "), and `value`."""
    return f"{t(lang, key)}{':' if lang == 'zh' else ': '}{value}"


def status_word(lang: str, status: str) -> str:
    """A batch's or an item's status in `lang`; an unknown status as it is."""
    return STATUS_TEXT.get(status, {}).get(lang, status)


def engine_label(lang: str, name: str) -> str:
    """An engine's name as the page shows it; an unregistered one by its own name."""
    key = f"engine_{name}"
    return t(lang, key) if key in TEXT else name


def reason_text(lang: str, code: str | None, error: str | None) -> tuple[str, str]:
    """A failed item's reason as (a short sentence in `lang`, the detail behind it: the file
    name, what a tool said). Unknown codes give the stored message as the detail."""
    try:
        zh, en = MESSAGES[ErrorCode(code)]
    except ValueError:
        return (error or "", "")
    sentence = zh if lang == "zh" else en
    message = error or ""
    marker = f" / {en}: "  # stored as "zh:detail / en: detail"; the detail is the same in both
    detail = message[message.rfind(marker) + len(marker):] if marker in message else ""
    return sentence, detail


def log_line(lang: str, line: str) -> str:
    """A line of the real-time log ("time | batch <id> | <file> | [LEVEL: ]中文 / English") as
    the page shows it: the message's half in `lang`, the batch column and the level in `lang`
    too. The file keeps both halves; a line of another shape is shown as it is."""
    parts = line.split(" | ", 3)
    if len(parts) != 4 or not parts[1].startswith("batch "):
        return line
    when, batch, name, message = parts
    level, colon, rest = message.partition(": ")
    leveled = bool(colon) and f"log_{level}" in TEXT
    zh, en = halves(rest if leveled else message)
    said = zh if lang == "zh" else en
    if leveled:
        said = labelled(lang, f"log_{level}", said)
    return f"{when} | {t(lang, 'log_batch')} {batch[len('batch '):]} | {name} | {said}"


def eta_text(lang: str, seconds: int | None) -> str:
    if seconds is None:
        return t(lang, "estimating")
    minutes, secs = divmod(int(seconds), 60)
    if lang == "zh":
        return f"约 {minutes} 分 {secs} 秒" if minutes else f"约 {secs} 秒"
    return f"about {minutes} min {secs} s" if minutes else f"about {secs} s"


def i18n_translations() -> dict[str, dict[str, str]]:
    """The static labels as `gr.I18n` takes them: locale -> key -> text."""
    table: dict[str, dict[str, str]] = {}
    for lang, locales in I18N_LOCALES.items():
        words = {key: text[lang] for key, text in TEXT.items()}
        for locale in locales:
            table[locale] = words
    return table
