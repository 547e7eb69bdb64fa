"""The studio's words in Chinese (default) and English, and the HTML of its progress panels."""

from __future__ import annotations

import html
from collections.abc import Sequence

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
    "items": {"zh": "文件数", "en": "Files"},
}

STATUS_WORDS: dict[str, dict[str, str]] = {
    "queued": {"zh": "排队中", "en": "queued"},
    "pending": {"zh": "排队中", "en": "queued"},
    "processing": {"zh": "处理中", "en": "processing"},
    "completed": {"zh": "已完成", "en": "completed"},
    "done": {"zh": "已完成", "en": "done"},
    "completed_with_errors": {"zh": "部分失败", "en": "completed with errors"},
    "failed": {"zh": "失败", "en": "failed"},
    "cancelled": {"zh": "已取消", "en": "cancelled"},
    "idle": {"zh": "空闲", "en": "idle"},
}
FINISHED = {"completed", "completed_with_errors", "failed", "cancelled"}

CSS = """
.hg-bar{height:18px;background:#e5e7eb;border-radius:9px;overflow:hidden;margin:6px 0}
.hg-bar>div{height:100%;background:linear-gradient(90deg,#2563eb,#16a34a);transition:width .5s}
.hg-line{margin:2px 0;font-size:15px}
.hg-table{width:100%;border-collapse:collapse;font-size:14px}
.hg-table td,.hg-table th{border-bottom:1px solid #e5e7eb;padding:4px 6px;text-align:left}
.hg-failed{color:#dc2626;font-weight:600}
.hg-results{display:flex;flex-wrap:wrap;gap:12px}
.hg-result{width:320px}
.hg-result video{width:100%;background:#000;border-radius:6px}
#hg-offline{display:none;position:fixed;top:0;left:0;right:0;z-index:1000;background:#dc2626;
 color:#fff;text-align:center;padding:6px;font-weight:600}
"""

# Shows a banner while the server does not answer (or answers that Redis is unreachable); the
# panels keep their last state meanwhile.
HEAD = """
<script>
(function(){
  function banner(){ var b=document.getElementById('hg-offline');
    if(!b){ b=document.createElement('div'); b.id='hg-offline';
      b.textContent='连接中断,正在重试… / Connection lost, retrying…'; document.body.appendChild(b);} return b; }
  async function ping(){
    var b = banner();
    try {
      const r = await fetch('healthz', {cache:'no-store'});
      const body = await r.json().catch(function(){ return {}; });
      b.textContent = body.redis === 'unreachable'
        ? 'Redis 连接中断,正在重试… / Redis unreachable, retrying…'
        : '连接中断,正在重试… / Connection lost, retrying…';
      b.style.display = r.ok ? 'none' : 'block';
    } catch(e){ b.textContent = '连接中断,正在重试… / Connection lost, retrying…'; b.style.display = 'block'; }
  }
  setInterval(ping, 2000);
})();
</script>
"""


def t(lang: str, key: str, **fields: object) -> str:
    """The text `key` in the language picked on the page."""
    text = TEXT[key][LANGS.get(lang, "zh")]
    return text.format(**fields) if fields else text


def status_word(lang: str, status: str) -> str:
    return STATUS_WORDS.get(status, {}).get(LANGS.get(lang, "zh"), status)


def eta_text(lang: str, seconds: int | None) -> str:
    if seconds is None:
        return "—"
    minutes, secs = divmod(int(seconds), 60)
    if LANGS.get(lang, "zh") == "zh":
        return f"约 {minutes} 分 {secs} 秒" if minutes else f"约 {secs} 秒"
    return f"about {minutes} min {secs} s" if minutes else f"about {secs} s"


def progress_html(snap: dict, lang: str) -> str:
    """The bar, `3/8`, the current video and frame, the time left, and the status line."""
    if not snap.get("batch_id"):
        return f'<div class="hg-line" id="hg-status" data-status="idle">{html.escape(t(lang, "idle"))}</div>'
    rate = float(snap["progress_rate"])
    lines = [
        f'<div class="hg-line" id="hg-status" data-status="{snap["status"]}"><b>{t(lang, "status")}:'
        f'{status_word(lang, snap["status"])}</b></div>',
        f'<div class="hg-bar"><div id="hg-bar" data-rate="{rate:.4f}" style="width:{100 * rate:.1f}%">'
        f'</div></div>',
        f'<div class="hg-line"><span id="hg-count">{snap["processed_count"]}/{snap["total_count"]}</span>'
        f' · {100 * rate:.1f}%</div>',
    ]
    if snap.get("current_video"):
        frames = t(lang, "frames", done=snap["current_frame"], total=snap["current_total_frames"])
        lines.append(f'<div class="hg-line">{t(lang, "current")}:<span id="hg-current">'
                     f'{html.escape(snap["current_video"])}</span> · <span id="hg-frames">{frames}</span></div>')
    if snap["status"] not in FINISHED:
        lines.append(f'<div class="hg-line">{t(lang, "eta")}:{eta_text(lang, snap.get("eta_seconds"))}</div>')
    else:
        lines.append(f'<div class="hg-line" id="hg-notice">{t(lang, "ended", ok=snap["succeeded_count"], bad=snap["failed_count"])}</div>')
    return "\n".join(lines)


def ticker_html(snap: dict, lang: str) -> str:
    """One line under a start button's progress ticks: which batch, how far."""
    return (f'<div class="hg-line" id="hg-ticker-line">{status_word(lang, snap["status"])} · '
            f'{snap["processed_count"]}/{snap["total_count"]}</div>')


def items_html(snap: dict, lang: str) -> str:
    """Every file's status, frames and time; a failed file's reason in red."""
    if not snap.get("items"):
        return ""
    head = "".join(f"<th>{t(lang, k)}</th>" for k in ("file", "status", "frame_col", "duration", "reason"))
    rows = []
    for item in snap["items"]:
        failed = item["status"] == "failed"
        cls = ' class="hg-failed"' if failed else ""
        took = f'{item["duration_s"]:.1f} s' if item.get("duration_s") else ""
        reason = html.escape(item.get("error") or "")
        rows.append(f'<tr data-status="{item["status"]}"><td>{html.escape(item["name"])}</td>'
                    f'<td{cls}>{status_word(lang, item["status"])}</td>'
                    f'<td>{item["frames_done"]}/{item["frames_total"]}</td><td>{took}</td>'
                    f'<td{cls}>{reason}</td></tr>')
    return f'<table class="hg-table" id="hg-items"><tr>{head}</tr>{"".join(rows)}</table>'


def results_html(snap: dict, lang: str) -> str:
    """A player and a download link for each finished video; the ZIP once the batch ends."""
    done = [i for i in snap.get("items", []) if i["status"] == "done" and i.get("output_url")]
    if not done:
        return ""
    cards = []
    for item in done:
        url = html.escape(item["output_url"].lstrip("/"))
        name = html.escape(item["name"])
        cards.append(f'<div class="hg-result"><video controls preload="metadata" src="{url}"></video>'
                     f'<div>{name} · <a href="{url}" download>{t(lang, "download")}</a></div></div>')
    zip_link = ""
    if snap["status"] in FINISHED:
        zip_link = (f'<p><a id="hg-zip" href="api/batches/{snap["batch_id"]}/download" download>'
                    f'{t(lang, "zip")}</a></p>')
    return f'{zip_link}<div class="hg-results">{"".join(cards)}</div>'


def system_html(system: dict, lang: str) -> str:
    parts = [f'{t(lang, "cpu")} {system.get("cpu_percent", 0):.0f}%',
             f'{t(lang, "memory")} {system.get("memory_percent", 0):.0f}%']
    gpus: Sequence[dict] = system.get("gpus") or []
    if not gpus:
        parts.append(f'{t(lang, "gpu")}: {t(lang, "no_gpu")}')
    for gpu in gpus:
        parts.append(f'{t(lang, "gpu")} {html.escape(str(gpu["name"]))} {gpu["utilization"]}% · '
                     f'{gpu["memory_used_mb"]}/{gpu["memory_total_mb"]} MB')
    return " · ".join(parts)
