"""The batch studio in the browser: Gradio Blocks over the same batch service and progress store
as the REST API. The page never runs a batch itself: closing it loses nothing, and a page opened
later attaches to the running batch."""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import gradio as gr

from heygem_core.config import Settings
from heygem_core.engines import ENGINE_CHOICES, engine_statuses
from heygem_core.errors import HeyGemError
from heygem_core.jobs.intake import Upload
from heygem_core.jobs.preflight import InputFile
from heygem_core.jobs.models import BatchMode
from heygem_core.jobs.rules import FINISHED_BATCH_STATUSES as FINISHED
from heygem_core.jobs.runtime import Runtime
from heygem_core.metrics import system_metrics
from heygem_core.realtime_log import tail, tail_of_batches
from heygem_web.ui.panels import items_html, preflight_html, progress_html, results_html, system_html, ticker_html
from heygem_web.ui.text import DEFAULT_LANG, LANGS, status_word, t

logger = logging.getLogger(__name__)

TICK_S = 1.0  # the panel refreshes from the store this often
FOLLOW_LIMIT_S = 24 * 3600  # a start button's follow loop ends with its batch, or after this
LOG_LINES = 40
LOG_BATCHES = 20  # with login on, the log fold shows lines of the user's latest this many batches
QUEUE_POLL_S = 0.05  # how often the idle Gradio queue looks for work (its default: every 1 ms)

RuntimeGetter = Callable[[], Runtime]


def build_ui(get_runtime: RuntimeGetter, settings: Settings) -> gr.Blocks:
    """The Blocks app; `get_runtime()` gives the running server's runtime at event time, and
    `settings` are the server's (the engines they allow are listed on the page)."""
    with gr.Blocks(title=t(DEFAULT_LANG, "title")) as demo:
        lang = gr.Radio(list(LANGS), value=DEFAULT_LANG, label="语言 / Language")
        attached = gr.State(None)  # the batch this page follows
        shown_results = gr.State("")
        heading = gr.Markdown(f"## {t(DEFAULT_LANG, 'title')}")
        with gr.Tabs():
            batch_tab = _batch_tab(settings)
            single_tab = _single_tab(settings)
            local_tab = _localise_tab(settings)
            history_tab = _history_tab()
        ticker = gr.HTML(elem_id="hg-ticker", min_height=40)  # where a start's gr.Progress shows
        panel = gr.HTML(progress_html({}, DEFAULT_LANG), elem_id="hg-panel")
        with gr.Row():
            cancel = gr.Button(t(DEFAULT_LANG, "cancel"), variant="stop", elem_id="hg-cancel")
            retry = gr.Button(t(DEFAULT_LANG, "retry"), elem_id="hg-retry")
        table = gr.HTML(elem_id="hg-table")
        results = gr.HTML(elem_id="hg-results")
        with gr.Accordion(t(DEFAULT_LANG, "system"), open=False) as system_box:
            system = gr.HTML(elem_id="hg-system")
        with gr.Accordion(t(DEFAULT_LANG, "log"), open=False) as log_box:
            log = gr.Textbox(lines=12, max_lines=12, show_label=False, elem_id="hg-log")
        timer = gr.Timer(TICK_S)

        panels = [attached, panel, table, results, shown_results, system, log, batch_tab["start"]]
        tick_inputs = [attached, lang, shown_results]
        timer.tick(_refresher(get_runtime), tick_inputs, panels, show_progress="hidden")
        demo.load(_refresher(get_runtime), tick_inputs, panels, show_progress="hidden")
        follow = _follower(get_runtime)
        for tab, mode in ((batch_tab, BatchMode.ONE_AUDIO), (single_tab, BatchMode.ONE_AUDIO),
                          (local_tab, BatchMode.ONE_VIDEO)):
            tab["start"].click(_submitter(get_runtime, mode), [tab["audio"], tab["videos"], tab["engine"],
                                                             lang], [attached],
                               trigger_mode="once").then(
                follow, [attached, lang], [ticker, tab["start"]], trigger_mode="once")
        cancel.click(_action(get_runtime, "cancel"), [attached], [])
        retry.click(_action(get_runtime, "retry"), [attached], [])
        for tab, mode in ((batch_tab, BatchMode.ONE_AUDIO), (single_tab, BatchMode.ONE_AUDIO),
                          (local_tab, BatchMode.ONE_VIDEO)):
            gr.on([tab["audio"].change, tab["videos"].change, tab["engine"].change, lang.change],
                  _checker(get_runtime, mode), [tab["audio"], tab["videos"], tab["engine"], lang], [tab["check"]],
                  show_progress="minimal")
        history_tab["refresh"].click(_history(get_runtime), [lang], [history_tab["table"], history_tab["pick"]])
        history_tab["open"].click(lambda pick: pick or None, [history_tab["pick"]], [attached])
        texts = [heading, cancel, retry, system_box, log_box, *_labelled(batch_tab, single_tab, local_tab,
                                                                          history_tab)]
        lang.change(_relabel, [lang], texts)
    _calm_queue(demo)
    return demo


def _calm_queue(demo: gr.Blocks) -> None:
    """Gradio's event queue looks for work every 1 ms and for progress every 10 ms even when idle:
    ~1000 wake-ups a second that cost 5 % of a core here and keep interrupting the renderer.
    Looking every QUEUE_POLL_S delays the start of a click's handler by at most that much."""
    queue = getattr(demo, "_queue", None)
    if queue is None or not hasattr(queue, "sleep_when_free"):
        logger.warning("gradio's queue has changed: its idle polling is left as it is")
        return
    queue.sleep_when_free = QUEUE_POLL_S
    queue.progress_update_sleep_when_free = max(queue.progress_update_sleep_when_free, QUEUE_POLL_S)


def _engine_dropdown(settings: Settings) -> tuple[gr.Dropdown, gr.Markdown]:
    statuses = engine_statuses(settings)
    dropdown = gr.Dropdown(list(ENGINE_CHOICES), value="auto", label=t(DEFAULT_LANG, "engine"))
    lines = [f"- {'✓' if s.available else '✗'} **{s.name}** {s.label}" + (f" — {s.reason}" if s.reason else "")
             for s in statuses]
    return dropdown, gr.Markdown("\n".join(lines), elem_classes=["hg-engines"])


def _batch_tab(settings: Settings) -> dict[str, gr.components.Component]:
    with gr.Tab(t(DEFAULT_LANG, "tab_batch"), elem_id="hg-tab-batch") as tab:
        with gr.Row():
            audio = gr.Audio(type="filepath", label=t(DEFAULT_LANG, "audio"), elem_id="hg-audio")
            videos = gr.File(file_count="multiple", file_types=["video", "image"],
                             label=t(DEFAULT_LANG, "videos"), elem_id="hg-videos")
        preview = gr.Gallery(label=t(DEFAULT_LANG, "preview"), columns=6, height=170, interactive=False,
                             elem_id="hg-preview")
        videos.change(_as_list, videos, preview, show_progress="hidden")
        check = gr.HTML(elem_id="hg-check")
        engine, engines = _engine_dropdown(settings)
        start = gr.Button(t(DEFAULT_LANG, "start"), variant="primary", elem_id="hg-start")
    return {"tab": tab, "audio": audio, "videos": videos, "engine": engine, "engines": engines, "start": start,
            "preview": preview, "check": check}


def _single_tab(settings: Settings) -> dict[str, gr.components.Component]:
    with gr.Tab(t(DEFAULT_LANG, "tab_single")) as tab:
        with gr.Row():
            audio = gr.Audio(type="filepath", label=t(DEFAULT_LANG, "audio"))
            videos = gr.File(file_count="single", file_types=["video", "image"], label=t(DEFAULT_LANG, "video"))
        check = gr.HTML()
        engine, engines = _engine_dropdown(settings)
        start = gr.Button(t(DEFAULT_LANG, "start_single"), variant="primary")
    return {"tab": tab, "audio": audio, "videos": videos, "engine": engine, "engines": engines, "start": start,
            "check": check}


def _localise_tab(settings: Settings) -> dict[str, gr.components.Component]:
    with gr.Tab(t(DEFAULT_LANG, "tab_localise")) as tab:
        with gr.Row():
            videos = gr.File(file_count="single", file_types=["video", "image"], label=t(DEFAULT_LANG, "video"))
            audio = gr.File(file_count="multiple", file_types=["audio"], label=t(DEFAULT_LANG, "audios"))
        check = gr.HTML()
        engine, engines = _engine_dropdown(settings)
        start = gr.Button(t(DEFAULT_LANG, "start"), variant="primary")
    return {"tab": tab, "audio": audio, "videos": videos, "engine": engine, "engines": engines, "start": start,
            "check": check}


def _history_tab() -> dict[str, gr.components.Component]:
    with gr.Tab(t(DEFAULT_LANG, "tab_history"), elem_id="hg-tab-history") as tab:
        refresh = gr.Button(t(DEFAULT_LANG, "refresh"))
        table = gr.HTML()
        with gr.Row():
            pick = gr.Dropdown([], label=t(DEFAULT_LANG, "pick_batch"))
            open_ = gr.Button(t(DEFAULT_LANG, "open"))
    return {"tab": tab, "refresh": refresh, "table": table, "pick": pick, "open": open_}


def _labelled(batch: dict, single: dict, local: dict, history: dict) -> list[gr.components.Component]:
    return [batch["tab"], batch["audio"], batch["videos"], batch["preview"], batch["engine"], batch["start"],
            single["tab"], single["audio"], single["videos"], single["engine"], single["start"],
            local["tab"], local["audio"], local["videos"], local["engine"], local["start"],
            history["tab"], history["refresh"], history["pick"], history["open"]]


def _relabel(lang: str) -> list:
    """The same components, labelled in the chosen language (order of `_labelled`)."""
    def label(key: str) -> dict:
        return gr.update(label=t(lang, key))

    def value(key: str) -> dict:
        return gr.update(value=t(lang, key))

    tabs = [gr.update(label=t(lang, k)) for k in ("tab_batch", "tab_single", "tab_localise", "tab_history")]
    return [gr.update(value=f"## {t(lang, 'title')}"), value("cancel"), value("retry"), label("system"),
            label("log"),
            tabs[0], label("audio"), label("videos"), label("preview"), label("engine"), value("start"),
            tabs[1], label("audio"), label("video"), label("engine"), value("start_single"),
            tabs[2], label("audios"), label("video"), label("engine"), value("start"),
            tabs[3], value("refresh"), label("pick_batch"), value("open")]


def _user(request: gr.Request | None) -> str | None:
    """The logged-in user (None when login is off): each user sees only their own batches."""
    return getattr(request, "username", None) if request is not None else None


def _submitter(get_runtime: RuntimeGetter, mode: BatchMode) -> Callable:
    def submit(audio, videos, engine: str, lang: str, request: gr.Request) -> str:
        audios = _as_list(audio)
        clips = _as_list(videos)
        if not audios or not clips:
            raise gr.Error(t(lang, "need_inputs"))
        try:
            with ExitStack() as stack:
                uploads = [Upload(Path(p).name, stack.enter_context(open(p, "rb"))) for p in audios]
                files = [Upload(Path(p).name, stack.enter_context(open(p, "rb"))) for p in clips]
                batch_id, _ = get_runtime().service.submit(uploads, files, engine=engine or "auto",
                                                           mode=mode.value, owner=_user(request) or "")
        except HeyGemError as e:
            raise gr.Error(html.escape(e.message)) from e
        return batch_id

    return submit


def _checker(get_runtime: RuntimeGetter, mode: BatchMode) -> Callable:
    """The check before queueing of the files picked so far, as the table beside them."""
    def check(audio, videos, engine: str, lang: str) -> str:
        clips, audios = _as_list(videos), _as_list(audio)
        if not clips and not audios:
            return ""
        inputs = [[InputFile(Path(p).name, Path(p)) for p in paths] for paths in (clips, audios)]
        try:
            report = get_runtime().preflight.check(*inputs, engine=engine or "auto", mode=mode.value)
        except HeyGemError as e:
            return f'<div class="hg-line hg-failed">{html.escape(t(lang, "check_failed", error=e.message))}</div>'
        return preflight_html(report.as_dict(), lang)

    return check


def _as_list(value) -> list[str]:
    if not value:
        return []
    return [str(v) for v in (value if isinstance(value, list) else [value])]


def _snapshot(runtime: Runtime, batch_id: str | None, user: str | None) -> dict:
    """The batch's snapshot (cached by the store's version), or {} when there is none to show."""
    if not batch_id:
        return {}
    try:
        return runtime.snapshots.live(batch_id, user)
    except HeyGemError:
        return {}


def _refresher(get_runtime: RuntimeGetter) -> Callable:
    """Timer tick: attach to the running (else latest) batch if none, and redraw every panel."""
    def refresh(batch_id: str | None, lang: str, shown: str, request: gr.Request) -> list:
        runtime, user = get_runtime(), _user(request)
        snap = _snapshot(runtime, batch_id, user)
        if not snap or (snap["status"] in FINISHED and runtime.store.active_batch_id(user)):
            batch_id = runtime.snapshots.current_batch_id(user)
            snap = _snapshot(runtime, batch_id, user)
        results = results_html(snap, lang) if snap else ""
        running = bool(snap) and snap["status"] not in FINISHED
        lines = _log_lines(runtime, user)
        system = snap.get("system") if snap else None
        return [batch_id, progress_html(snap, lang), items_html(snap, lang) if snap else "",
                gr.skip() if results == shown else results, results,
                system_html(system or system_metrics(), lang), "\n".join(lines),
                gr.update(interactive=not running)]

    return refresh


def _log_lines(runtime: Runtime, user: str | None) -> list[str]:
    """The live log's last lines; with login on, only those about the user's own batches."""
    if user is None:
        return tail(runtime.settings.log_file, LOG_LINES)
    own = [batch.batch_id for batch in runtime.service.history(user, limit=LOG_BATCHES)]
    return tail_of_batches(runtime.settings.log_file, own, LOG_LINES)


def _follower(get_runtime: RuntimeGetter) -> Callable:
    """After a start: follow the batch it made with gr.Progress ticking per frame of the running
    video, until it ends. The panels themselves are redrawn by the timer, on every open page."""
    def follow(batch_id: str | None, lang: str, request: gr.Request,
               progress: gr.Progress = gr.Progress()) -> Iterator[list]:
        if not batch_id:
            return
        runtime, user = get_runtime(), _user(request)
        deadline = time.monotonic() + FOLLOW_LIMIT_S
        snap = _snapshot(runtime, batch_id, user)
        while snap and time.monotonic() < deadline:
            running = snap["status"] not in FINISHED
            if snap.get("current_total_frames"):
                progress((snap["current_frame"], snap["current_total_frames"]),
                         desc=f'{snap["processed_count"]}/{snap["total_count"]} {snap.get("current_video") or ""}',
                         unit="frames")
            yield [ticker_html(snap, lang), gr.update(interactive=not running)]
            if not running:
                gr.Info(t(lang, "ended", ok=snap["succeeded_count"], bad=snap["failed_count"]))
                return
            time.sleep(TICK_S)
            snap = _snapshot(runtime, batch_id, user)

    return follow


def _action(get_runtime: RuntimeGetter, name: str) -> Callable:
    def act(batch_id: str | None, request: gr.Request) -> None:
        if not batch_id:
            return
        try:
            getattr(get_runtime().service, name)(batch_id, _user(request))
        except HeyGemError as e:
            raise gr.Error(html.escape(e.message)) from e

    return act


def _history(get_runtime: RuntimeGetter) -> Callable:
    def history(lang: str, request: gr.Request) -> list:
        batches = get_runtime().service.history(_user(request), limit=50)
        rows = []
        choices = []
        for b in batches:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(b.created_at))
            done = sum(i.status.value == "done" for i in b.items)
            names = ", ".join(i.name for i in b.items[:3]) + ("…" if len(b.items) > 3 else "")
            rows.append(f"<tr><td>{when}</td><td>{status_word(lang, b.status.value)}</td>"
                        f"<td>{done}/{len(b.items)}</td><td>{html.escape(names)}</td>"
                        f"<td><code>{b.batch_id[:8]}</code></td></tr>")
            choices.append((f"{when} · {names}", b.batch_id))
        head = f"<tr><th>{t(lang, 'created')}</th><th>{t(lang, 'status')}</th><th>{t(lang, 'items')}</th>" \
               f"<th>{t(lang, 'file')}</th><th>id</th></tr>"
        return [f'<table class="hg-table">{head}{"".join(rows)}</table>',
                gr.update(choices=choices, value=choices[0][1] if choices else None)]

    return history
