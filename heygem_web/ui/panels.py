"""The HTML of the studio's panels: the progress bar and its lines, the table of files, the
finished videos, the system line. Everything user-supplied is escaped."""

from __future__ import annotations

import html
from collections.abc import Sequence

from heygem_core.jobs.rules import FINISHED_BATCH_STATUSES as FINISHED
from heygem_web.ui.text import eta_text, status_word, t
from heygem_web.urls import download_url, manifest_url


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
    """A player and a download link for each finished video; the ZIP and the manifest once the
    batch ends."""
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
        zip_link = (f'<p><a id="hg-zip" href="{download_url(snap["batch_id"]).lstrip("/")}" download>'
                    f'{t(lang, "zip")}</a> · <a id="hg-manifest" '
                    f'href="{manifest_url(snap["batch_id"]).lstrip("/")}" download>{t(lang, "manifest")}</a></p>')
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


def preflight_html(report: dict, lang: str) -> str:
    """The check before queueing beside each file: ok or will fail (and why), length, fps, faces
    on the sampled frames, estimated time; the batch's estimated total under it."""
    files = report.get("files") or []
    if not files:
        return ""
    keys = ("file", "check", "length", "fps", "faces", "estimate", "reason")
    head = "".join(f"<th>{t(lang, k)}</th>" for k in keys)
    rows = [_preflight_row(row, lang) for row in files]
    ok = sum(1 for row in files if row["ok"])
    total = report.get("estimated_seconds")
    foot = t(lang, "check_total", time=eta_text(lang, None if total is None else round(total)), ok=ok,
             n=len(files))
    return (f'<table class="hg-table" id="hg-preflight"><tr>{head}</tr>{"".join(rows)}</table>'
            f'<div class="hg-line" id="hg-preflight-total">{foot}</div>')


def _preflight_row(row: dict, lang: str) -> str:
    cls = "" if row["ok"] else ' class="hg-failed"'
    verdict = t(lang, "check_ok" if row["ok"] else "check_fail")
    length = f'{row["duration_s"]:.1f} s' if row.get("duration_s") is not None else ""
    fps = f'{row["fps"]:g}' if row.get("fps") else ""
    faces = ""
    if row.get("face_found") is not None:
        faces = f'{row["faces"]} · {100 * (row.get("face_share") or 0):.0f}%'
    estimate = eta_text(lang, round(row["estimated_seconds"])) if row.get("estimated_seconds") is not None else ""
    reason = html.escape(row.get("error") or "; ".join(row.get("warnings") or ()))
    return (f'<tr data-ok="{str(row["ok"]).lower()}"><td>{html.escape(row["name"])}</td><td{cls}>{verdict}</td>'
            f'<td>{length}</td><td>{fps}</td><td>{faces}</td><td>{estimate}</td><td{cls}>{reason}</td></tr>')
