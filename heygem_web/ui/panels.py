"""The HTML of the studio's panels: the one progress view, the table of files, the finished
videos, the queue and the system line. Everything user-supplied is escaped.

A panel is drawn from the store's snapshot alone, so it looks the same after a reload. `kind` is
the tab a batch belongs to ("batch", "single", "localise"; "history" shows any)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

from heygem_core.jobs.rules import FINISHED_BATCH_STATUSES as FINISHED
from heygem_web.ui.text import eta_text, labelled, reason_text, status_word, t
from heygem_web.urls import download_url, manifest_url

ETA_AFTER_SHARE = 0.5  # before any file ended, the time left is shown once half the first is made
BAR_CLASS = {"completed": "hg-ok", "completed_with_errors": "hg-mixed", "failed": "hg-bad",
             "cancelled": "hg-off"}


@dataclass(frozen=True)
class Counts:
    """What the view counts: files that could run (those refused at upload apart), of which
    finished; and the refused ones."""

    runnable: int
    processed: int
    rejected: int


def rejected_at_upload(item: dict) -> bool:
    """A file that failed its check at upload: it never ran, and never will."""
    return item["status"] == "failed" and item.get("duration_s") is None and not item.get("frames_done")


def counts(snap: dict) -> Counts:
    items = snap.get("items") or []
    rejected = sum(rejected_at_upload(i) for i in items)
    processed = sum(i["status"] in ("done", "failed", "cancelled") and not rejected_at_upload(i) for i in items)
    return Counts(len(items) - rejected, processed, rejected)


def shown_status(snap: dict) -> str:
    """The batch's status as the view shows it: "processing" for a batch none of whose files has
    started (one refused at upload makes the store say so) is still "queued"."""
    status = snap["status"]
    if status == "processing":
        waiting = all(i["status"] == "pending" or rejected_at_upload(i) for i in snap.get("items") or [])
        return "queued" if waiting else status
    return status


def _eta_known(snap: dict, done: Counts) -> bool:
    """Whether the time left is worth showing: before a file ended or half the first was made,
    the measured throughput is mostly the start-up (model, face track) and far off."""
    if done.processed:
        return True
    total = snap.get("current_total_frames") or 0
    return bool(total) and snap.get("current_frame", 0) >= ETA_AFTER_SHARE * total


def idle_html(lang: str, kind: str) -> str:
    key = {"single": "idle_single", "localise": "idle_localise", "history": "idle_history"}.get(kind, "idle")
    return f'<div class="hg-line" id="hg-status" data-status="idle">{html.escape(t(lang, key))}</div>'


def progress_html(snap: dict, lang: str, kind: str = "batch") -> str:
    """The one progress view: status, bar, `2/3 processed`, the current file and frame, the time
    left while it runs, the summary when it ended."""
    if not snap.get("batch_id"):
        return idle_html(lang, kind)
    status = shown_status(snap)
    rate = float(snap["progress_rate"])
    done = counts(snap)
    bar = BAR_CLASS.get(status, "")
    lines = [
        f'<div class="hg-line" id="hg-status" data-status="{status}" data-batch="{snap["batch_id"]}">'
        f'<b>{labelled(lang, "status", status_word(lang, status))}</b></div>',
        f'<div class="hg-bar"><div id="hg-bar" class="{bar}" data-rate="{rate:.4f}" '
        f'style="width:{100 * rate:.1f}%"></div></div>',
        f'<div class="hg-line"><span id="hg-count" data-done="{done.processed}" data-total="{done.runnable}">'
        f'{t(lang, "count", done=done.processed, total=done.runnable)}</span> · {100 * rate:.1f}%</div>',
    ]
    if done.rejected:
        lines.append(f'<div class="hg-line hg-failed" id="hg-rejected">{t(lang, "rejected", n=done.rejected)}</div>')
    if snap.get("current_video"):
        key = "current_audio" if snap.get("mode") == "one_video" else "current"
        frames = t(lang, "frames", done=snap["current_frame"], total=snap["current_total_frames"])
        name = f'<span id="hg-current">{html.escape(snap["current_video"])}</span>'
        lines.append(f'<div class="hg-line">{labelled(lang, key, name)} · <span id="hg-frames">{frames}</span></div>')
    if status not in FINISHED:
        eta = snap.get("eta_seconds") if _eta_known(snap, done) else None
        lines.append(f'<div class="hg-line" id="hg-eta">{labelled(lang, "eta", eta_text(lang, eta))}</div>')
    else:
        lines.append(f'<div class="hg-line" id="hg-notice">{ended_text(snap, lang, kind)}</div>')
    return "\n".join(lines)


def ended_text(snap: dict, lang: str, kind: str) -> str:
    if kind == "single" and snap.get("total_count") == 1:
        return labelled(lang, "ended_single", status_word(lang, snap["status"]))
    return t(lang, "ended", ok=snap["succeeded_count"], bad=snap["failed_count"],
             cancelled=snap.get("cancelled_count", 0))


def _reason_cell(item: dict, lang: str) -> str:
    if item["status"] != "failed":
        return "<td></td>"
    sentence, detail = reason_text(lang, item.get("error_code"), item.get("error"))
    more = ""
    if detail:
        more = (f'<details><summary>{t(lang, "detail")}</summary>'
                f'<code class="hg-detail">{html.escape(detail)}</code></details>')
    return f'<td class="hg-failed hg-reason">{html.escape(sentence)}{more}</td>'


def items_html(snap: dict, lang: str) -> str:
    """Every file's status, frames and time; a failed file's reason in red, its detail folded."""
    if not snap.get("items"):
        return ""
    optional = ("frame_col", "duration")
    head = "".join(f'<th{" class=hg-opt" if k in optional else ""}>{t(lang, k)}</th>'
                   for k in ("file", "status", "frame_col", "duration", "reason"))
    rows = []
    for item in snap["items"]:
        cls = ' class="hg-failed hg-word"' if item["status"] == "failed" else ' class="hg-word"'
        took = t(lang, "seconds", s=f'{item["duration_s"]:.1f}') if item.get("duration_s") else ""
        rows.append(f'<tr data-status="{item["status"]}"><td class="hg-name">{html.escape(item["name"])}</td>'
                    f'<td{cls}>{status_word(lang, item["status"])}</td>'
                    f'<td class="hg-opt">{item["frames_done"]}/{item["frames_total"]}</td>'
                    f'<td class="hg-opt">{took}</td>{_reason_cell(item, lang)}</tr>')
    return (f'<div class="hg-scroll"><table class="hg-table" id="hg-items"><tr>{head}</tr>'
            f'{"".join(rows)}</table></div>')


def results_html(snap: dict, lang: str, kind: str = "batch") -> str:
    """A player (showing its first frame) and a download button for each finished video; once
    the batch ends, the ZIP and the manifest as buttons (not for a single video)."""
    done = [i for i in snap.get("items", []) if i["status"] == "done" and i.get("output_url")]
    if not done:
        return ""
    cards = []
    for item in done:
        url = html.escape(item["output_url"].lstrip("/"))
        name = html.escape(item["name"])
        cards.append(f'<div class="hg-result"><video controls preload="metadata" src="{url}#t=0.1"></video>'
                     f'<div class="hg-name">{name}</div>'
                     f'<a class="hg-btn" href="{url}" download>{t(lang, "download")}</a></div>')
    buttons = ""
    if snap["status"] in FINISHED and not (kind == "single" and len(snap["items"]) == 1):
        batch_id = snap["batch_id"]
        buttons = (f'<div class="hg-actions"><a id="hg-zip" class="hg-btn hg-primary" '
                   f'href="{download_url(batch_id).lstrip("/")}" download>{t(lang, "zip")}</a>'
                   f'<a id="hg-manifest" class="hg-btn" href="{manifest_url(batch_id).lstrip("/")}" download>'
                   f'{t(lang, "manifest")}</a>'
                   f'<a id="hg-manifest-json" class="hg-btn" '
                   f'href="{manifest_url(batch_id, "json").lstrip("/")}" download>{t(lang, "manifest_json")}</a>'
                   f'</div>')
    return f'{buttons}<div class="hg-results">{"".join(cards)}</div>'


@dataclass(frozen=True)
class QueueEntry:
    """One unfinished batch in the queue, in the order it runs."""

    batch_id: str
    status: str        # "processing" or "queued"
    names: list[str]   # its files, in order
    done: int          # items finished
    total: int


def queue_html(entries: Sequence[QueueEntry], lang: str, shown: str | None = None, paused: bool = False) -> str:
    """What runs and what waits, in order; the batch on the panel is marked; whether the line is
    paused."""
    note = f'<div class="hg-line hg-paused" id="hg-queue-paused">{t(lang, "queue_paused")}</div>' if paused else ""
    if not entries:
        return note
    rows = []
    for position, entry in enumerate(entries, 1):
        names = ", ".join(entry.names[:3]) + ("…" if len(entry.names) > 3 else "")
        word = t(lang, "queue_running" if entry.status == "processing" else "queue_waiting")
        mark = " hg-shown" if entry.batch_id == shown else ""
        rows.append(f'<li class="hg-queue-row{mark}" data-batch="{entry.batch_id}" data-status="{entry.status}">'
                    f'<b>{position}.</b> {word} · {entry.done}/{entry.total} · '
                    f'<span class="hg-name">{html.escape(names)}</span></li>')
    return f'<div class="hg-queue"><b>{t(lang, "queue")}</b>{note}<ol id="hg-queue-list">{"".join(rows)}</ol></div>'


def engines_html(statuses: Sequence, lang: str) -> str:
    """Which engines can run here, in `lang` (no server paths: those are in the log)."""
    from heygem_web.ui.text import engine_label

    lines = [f'<li>{"✓" if s.available else "✗"} {html.escape(engine_label(lang, s.name))} · '
             f'{t(lang, "available" if s.available else "unavailable")}</li>' for s in statuses]
    return f'<ul class="hg-engines">{"".join(lines)}</ul>'


def system_html(system: dict, lang: str) -> str:
    parts = [f'{t(lang, "cpu")} {system.get("cpu_percent", 0):.0f}%',
             f'{t(lang, "memory")} {system.get("memory_percent", 0):.0f}%']
    gpus: Sequence[dict] = system.get("gpus") or []
    if not gpus:
        parts.append(labelled(lang, "gpu", t(lang, "no_gpu")))
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
    foot = t(lang, "check_total", total=eta_text(lang, None if total is None else round(total)), ok=ok,
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
    if row.get("error_code"):
        sentence, detail = reason_text(lang, row["error_code"], row.get("error"))
        reason = html.escape(sentence) + (f"<details><summary>{t(lang, 'detail')}</summary>"
                                          f"{html.escape(detail)}</details>" if detail else "")
    else:
        reason = html.escape("; ".join(_preflight_notes(row, lang)))
    return (f'<tr data-ok="{str(row["ok"]).lower()}"><td>{html.escape(row["name"])}</td><td{cls}>{verdict}</td>'
            f'<td>{length}</td><td>{fps}</td><td>{faces}</td><td>{estimate}</td><td{cls}>{reason}</td></tr>')


def _preflight_notes(row: dict, lang: str) -> list[str]:
    """What a passing file's check warns of, in `lang` (the API's warnings are English)."""
    if row.get("kind") == "audio":  # no faces to look for
        return []
    if row.get("face_found") is None:
        return [t(lang, "check_no_faces")]
    notes = []
    share = row.get("face_share")
    if share is not None and share < 1:
        notes.append(t(lang, "check_face_share", n=f"{100 * share:.0f}"))
    if (row.get("faces") or 0) > 1:
        notes.append(t(lang, "check_many_faces", n=row["faces"]))
    return notes
