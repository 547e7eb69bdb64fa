"""The batch studio in the browser: Gradio Blocks over the same batch service and progress store
as the REST API. The page never runs a batch itself: closing it loses nothing, and a page opened
later attaches to the running batch. Starting is always allowed: a batch started while another
runs waits in the queue, which the page lists.

Words follow the browser's language: static labels through `gr.I18n` (`I18N`), the panels drawn
here through the request's Accept-Language (`text.lang_of`)."""

from __future__ import annotations

import html
import io
import json
import logging
import subprocess
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from PIL import Image, ImageDraw

from heygem_core.config import Settings
from heygem_core.engines import ENGINE_CHOICES, engine_statuses
from heygem_core.errors import HeyGemError
from heygem_core.jobs.intake import Upload
from heygem_core.jobs.models import Batch, BatchMode, ItemStatus
from heygem_core.jobs.preflight import InputFile
from heygem_core.media.ffmpeg import ffmpeg_exe
from heygem_core.media.probe import probe_video
from heygem_core.jobs.rules import FINISHED_BATCH_STATUSES as FINISHED
from heygem_core.jobs.runtime import Runtime
from heygem_core.metrics import system_metrics
from heygem_core.realtime_log import tail, tail_of_batches
from heygem_web.ui.panels import (QueueEntry, engines_html, items_html, preflight_html, progress_html, queue_html,
                                  results_html,
                                  system_html)
from heygem_web.ui.text import engine_label, i18n_translations, lang_of, log_line, status_word, t

logger = logging.getLogger(__name__)

TICK_S = 1.0  # the panels refresh from the store this often
LOG_LINES = 40
LOG_BATCHES = 20  # with login on, the log fold shows lines of the user's latest this many batches
QUEUE_SCAN = 50  # the queue view and a tab's latest batch are looked for among this many batches
HISTORY_LIMIT = 200
QUEUE_POLL_S = 0.05  # how often the idle Gradio queue looks for work (its default: every 1 ms)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "studio"  # make_studio_examples.py
TABS = ("batch", "single", "localise", "history")
EXAMPLE_IDS = {"batch": "hg-examples-many", "single": "hg-examples-one", "localise": "hg-examples-localise"}
HISTORY_STATUSES = ("processing", "queued", "completed", "completed_with_errors", "failed", "cancelled")
# The history's date filter: any date, since midnight, so many days back. Not "all": a value that is
# also a key of the page's gr.I18n words is sent back translated (全部) and refused.
HISTORY_PERIODS = ("any", "today", "7d", "30d")
HISTORY_PERIOD_DAYS = {"7d": 7, "30d": 30}
DAY_S = 86400
PICKER_SIDE = 960  # px: the long side of the frame the face is clicked on
MARK = (255, 60, 60)  # RGB of the ring on the chosen face
HIDDEN = "hidden"  # show_progress for every event: the panel is the one progress view

I18N = gr.I18n(**i18n_translations())
_ = I18N  # the static labels: `_("key")`

RuntimeGetter = Callable[[], Runtime]


class LateLabels:
    """Labels that gr.I18n leaves untranslated in this Gradio (gr.Audio's, a one-file gr.File's,
    gr.Examples' column heads): collected while the page is built, set in the browser's language
    when it loads, and again after an example is clicked (gr.Examples puts back the props a
    component was made with)."""

    def __init__(self) -> None:
        self.updates: list[tuple[gr.components.Component, Callable[[str], dict]]] = []
        self.resets: list = []  # the events after which they are set again

    def label(self, component: gr.components.Component, key: str) -> None:
        self.updates.append((component, lambda lang: gr.update(label=t(lang, key))))

    def headers(self, dataset: gr.components.Component, keys: tuple[str, ...]) -> None:
        self.updates.append((dataset, lambda lang: gr.update(headers=[t(lang, k) for k in keys])))

    def again_after(self, event) -> None:
        self.resets.append(event)

    def wire(self, demo: gr.Blocks) -> None:
        """Set them when the page loads and after each event that puts them back."""
        outputs = self.components()
        demo.load(self.handler(), None, outputs, show_progress=HIDDEN)
        for event in self.resets:
            event.then(self.handler(), None, outputs, show_progress=HIDDEN)

    def components(self) -> list[gr.components.Component]:
        return [component for component, _ in self.updates]

    def handler(self) -> Callable:
        def labels(request: gr.Request) -> list:
            lang = _lang(request)
            return [update(lang) for _, update in self.updates]

        return labels


def build_ui(get_runtime: RuntimeGetter, settings: Settings) -> gr.Blocks:
    """The Blocks app; `get_runtime()` gives the running server's runtime at event time, and
    `settings` are the server's (the engines they allow are listed on the page). Mount it with
    `i18n=I18N`."""
    late = LateLabels()
    with gr.Blocks(title="HeyGem") as demo:
        views = gr.State({})  # tab -> the batch its panel shows; "mine:<tab>" -> batches started there
        tab = gr.State("batch")
        shown_results = gr.State("")
        gr.Markdown(_("title"))
        with gr.Tabs():
            tabs = {"batch": _batch_tab(late), "single": _single_tab(late), "localise": _localise_tab(late),
                    "history": _history_tab()}
        queue = gr.HTML(elem_id="hg-queue")
        line = _line_controls()
        panel = gr.HTML(elem_id="hg-panel")
        with gr.Row():
            cancel = gr.Button(_("cancel"), variant="secondary", interactive=False, elem_id="hg-cancel")
            retry = gr.Button(_("retry"), interactive=False, elem_id="hg-retry")
        one, cancel_one, picked, offered = _item_controls()
        table = gr.HTML(elem_id="hg-table")
        results = gr.HTML(elem_id="hg-results")
        with gr.Accordion(_("system"), open=False):
            system = gr.HTML(elem_id="hg-system")
        with gr.Accordion(_("log"), open=False):
            log = gr.Textbox(lines=12, max_lines=12, label=_("log"), show_label=False, elem_id="hg-log",
                             autoscroll=True)
        timer = gr.Timer(TICK_S)

        refresh = _refresher(get_runtime)
        panels = [views, panel, table, results, shown_results, system, log, cancel, retry, queue,
                  line["pause"], line["resume"], line["pick"], line["front"], one, cancel_one, offered]
        tick_inputs = [views, tab, shown_results, offered]
        timer.tick(refresh, tick_inputs, panels, show_progress=HIDDEN)
        demo.load(refresh, tick_inputs, panels, show_progress=HIDDEN)
        engine_outputs = [out for key in ("batch", "single", "localise") for out in (tabs[key]["engine"],
                                                                                    tabs[key]["engines"])]
        demo.load(_engine_labels(settings), None, engine_outputs, show_progress=HIDDEN)
        late.wire(demo)
        for key, mode in (("batch", BatchMode.ONE_AUDIO), ("single", BatchMode.ONE_AUDIO),
                          ("localise", BatchMode.ONE_VIDEO)):
            parts = tabs[key]
            faces = parts.get("faces") or gr.State({})
            parts["start"].click(_submitter(get_runtime, mode, key),
                                 [parts["audio"], parts["videos"], parts["engine"], views, faces], [views],
                                 trigger_mode="once", show_progress=HIDDEN).then(
                refresh, tick_inputs, panels, show_progress=HIDDEN)
        for key in TABS:
            tabs[key]["tab"].select(lambda key=key: key, None, [tab], show_progress=HIDDEN).then(
                refresh, tick_inputs, panels, show_progress=HIDDEN)
        cancel.click(_action(get_runtime, "cancel"), [views, tab], [], show_progress=HIDDEN).then(
            refresh, tick_inputs, panels, show_progress=HIDDEN)
        retry.click(_action(get_runtime, "retry"), [views, tab], [], show_progress=HIDDEN).then(
            refresh, tick_inputs, panels, show_progress=HIDDEN)
        for key, mode in (("batch", BatchMode.ONE_AUDIO), ("single", BatchMode.ONE_AUDIO),
                          ("localise", BatchMode.ONE_VIDEO)):
            parts = tabs[key]
            gr.on([parts["audio"].change, parts["videos"].change, parts["engine"].change],
                  _checker(get_runtime, mode), [parts["audio"], parts["videos"], parts["engine"]], [parts["check"]],
                  show_progress=HIDDEN)
        for name in ("pause", "resume"):
            line[name].click(_line_action(get_runtime, name), None, [], show_progress=HIDDEN).then(
                refresh, tick_inputs, panels, show_progress=HIDDEN)
        line["front"].click(_front_action(get_runtime), [line["pick"]], [], show_progress=HIDDEN).then(
            refresh, tick_inputs, panels, show_progress=HIDDEN)
        one.input(lambda value: value, one, picked, show_progress=HIDDEN)
        cancel_one.click(_cancel_one(get_runtime), [picked], [picked, one], show_progress=HIDDEN).then(
            refresh, tick_inputs, panels, show_progress=HIDDEN)
        _wire_history(get_runtime, tabs["history"], views, tab, refresh, tick_inputs, panels, demo)
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


# --- the tabs ------------------------------------------------------------------------------

def _engine_picker() -> tuple[gr.Dropdown, gr.HTML]:
    """The engine dropdown and the list of what can run; both labelled in the browser's language
    when the page loads (`_engine_labels`)."""
    dropdown = gr.Dropdown([(name, name) for name in ENGINE_CHOICES], value="auto", label=_("engine"))
    return dropdown, gr.HTML(elem_classes=["hg-engines"])


def _engine_labels(settings: Settings) -> Callable:
    def labels(request: gr.Request) -> list:
        lang = _lang(request)
        choices = [(engine_label(lang, name), name) for name in ENGINE_CHOICES]
        listing = engines_html(engine_statuses(settings), lang)
        return [out for _ in range(3) for out in (gr.update(choices=choices), listing)]

    return labels


def _examples(tab: str, audio: gr.components.Component, videos: gr.components.Component,
              late: LateLabels) -> None:
    """One-click inputs from examples/studio (made by examples/make_studio_examples.py): on the
    batch tab one speech and every presenter, on the single tab one speech and one presenter a
    row, on the languages tab one presenter and every speech (a version each)."""
    speeches, clips = sorted(EXAMPLES.glob("speech*.wav")), sorted(EXAMPLES.glob("presenter_*.mp4"))
    if not speeches or not clips:
        logger.warning("no studio examples in %s: run examples/make_studio_examples.py", EXAMPLES)
        return
    speech, names = str(speeches[0]), [str(c) for c in clips]  # speech.wav: the English one
    if tab == "localise":
        rows, inputs, heads = [[names[0], [str(s) for s in speeches]]], [videos, audio], ("video", "audios")
    elif tab == "single":
        rows, inputs, heads = [[speech, c] for c in names], [audio, videos], ("audio", "video")
    else:
        rows, inputs, heads = [[speech, names]], [audio, videos], ("audio", "videos")
    examples = gr.Examples(rows, inputs, label=_("examples"), examples_per_page=4, elem_id=EXAMPLE_IDS[tab])
    late.headers(examples.dataset, heads)
    late.again_after(examples.load_input_event)


def _batch_tab(late: LateLabels) -> dict[str, gr.components.Component]:
    with gr.Tab(_("tab_batch"), elem_id="hg-tab-batch") as tab:
        with gr.Row():
            audio = gr.Audio(type="filepath", label="", elem_id="hg-audio")
            late.label(audio, "audio")
            videos = gr.File(file_count="multiple", file_types=["video", "image"], label=_("videos"),
                             elem_id="hg-videos")
        preview = gr.Gallery(label=_("preview"), columns=6, height=160, object_fit="contain",
                             interactive=False, visible=False, elem_id="hg-preview")
        videos.change(_preview, videos, preview, show_progress=HIDDEN)
        faces, shown = gr.State({}), gr.State({})  # video path -> its face point; the frame on the picker
        picker = gr.Image(label=_("face_pick"), interactive=False, visible=False, height=280,
                          elem_id="hg-face-pick")
        preview.select(_show_frame, [videos, faces], [picker, shown], show_progress=HIDDEN)
        picker.select(_choose_face, [shown, faces], [faces, picker], show_progress=HIDDEN)
        check = gr.HTML(elem_id="hg-check")
        _examples("batch", audio, videos, late)
        engine, engines = _engine_picker()
        start = gr.Button(_("start"), variant="primary", elem_id="hg-start")
    return {"tab": tab, "audio": audio, "videos": videos, "engine": engine, "engines": engines, "start": start,
            "preview": preview, "check": check, "faces": faces}


def _single_tab(late: LateLabels) -> dict[str, gr.components.Component]:
    with gr.Tab(_("tab_single"), elem_id="hg-tab-single") as tab:
        with gr.Row():
            audio = gr.Audio(type="filepath", label="", elem_id="hg-single-audio")
            late.label(audio, "audio")
            videos = gr.File(file_count="single", file_types=["video", "image"], label="", elem_id="hg-single-video")
            late.label(videos, "video")
        check = gr.HTML(elem_id="hg-single-check")
        _examples("single", audio, videos, late)
        engine, engines = _engine_picker()
        start = gr.Button(_("start_single"), variant="primary", elem_id="hg-single-start")
    return {"tab": tab, "audio": audio, "videos": videos, "engine": engine, "engines": engines, "start": start,
            "check": check}


def _localise_tab(late: LateLabels) -> dict[str, gr.components.Component]:
    with gr.Tab(_("tab_localise"), elem_id="hg-tab-localise") as tab:
        with gr.Row():
            videos = gr.File(file_count="single", file_types=["video", "image"], label="", elem_id="hg-localise-video")
            late.label(videos, "video")
            audio = gr.File(file_count="multiple", file_types=["audio"], label=_("audios"),
                            elem_id="hg-localise-audios")
        check = gr.HTML(elem_id="hg-localise-check")
        _examples("localise", audio, videos, late)
        engine, engines = _engine_picker()
        start = gr.Button(_("start"), variant="primary", elem_id="hg-localise-start")
    return {"tab": tab, "audio": audio, "videos": videos, "engine": engine, "engines": engines, "start": start,
            "check": check}


def _line_controls() -> dict[str, gr.components.Component]:
    """Pause and resume the line (the running file finishes first), and move a waiting batch to
    its front."""
    with gr.Row(elem_id="hg-line-controls"):
        pause = gr.Button(_("queue_pause"), size="sm", elem_id="hg-queue-pause")
        resume = gr.Button(_("queue_resume"), size="sm", variant="primary", visible=False, elem_id="hg-queue-resume")
        pick = gr.Dropdown([("", "")], value="", label=_("queue_pick"), interactive=False, scale=3,
                           elem_id="hg-queue-pick")
        front = gr.Button(_("queue_front"), size="sm", interactive=False, elem_id="hg-queue-front")
    return {"pause": pause, "resume": resume, "pick": pick, "front": front}


def _item_controls() -> tuple[gr.Radio, gr.Button, gr.State, gr.State]:
    """Cancel one file of the batch on the panel: a radio of those that can still be cancelled
    (hidden while none can), the button, the pick ("<batch id>:<index>", kept as clicked: the
    radio's choices may be redrawn meanwhile) and the [batch id, choices] last sent to the radio
    (a tick re-sends them only when they change, so a click is never lost to a redraw)."""
    with gr.Row():
        one = gr.Radio([], label=_("cancel_pick"), visible=False, scale=3, elem_id="hg-item-pick")
        cancel_one = gr.Button(_("cancel_one"), size="sm", visible=False, elem_id="hg-item-cancel")
    return one, cancel_one, gr.State(""), gr.State(None)


def _line_action(get_runtime: RuntimeGetter, name: str) -> Callable:
    """Pause or resume the line, and say so."""
    def act(request: gr.Request) -> None:
        getattr(get_runtime().service, name)()
        gr.Info(t(_lang(request), f"{name}_toast"), title=t(_lang(request), "info_title"))

    return act


def _front_action(get_runtime: RuntimeGetter) -> Callable:
    """Move the picked waiting batch to the front of the line, and say so."""
    def act(picked: str, request: gr.Request) -> None:
        lang = _lang(request)
        if not picked:
            return
        try:
            get_runtime().service.move_to_front(picked, _user(request))
        except HeyGemError as e:
            raise gr.Error(html.escape(_message(e, lang)), title=t(lang, "error_title")) from e
        gr.Info(t(lang, "move_to_front_toast"), title=t(lang, "info_title"))

    return act


def _history_tab() -> dict[str, gr.components.Component]:
    with gr.Tab(_("tab_history"), elem_id="hg-tab-history") as tab:
        with gr.Row():
            search = gr.Textbox(label=_("search"), elem_id="hg-history-search")
            period = gr.Dropdown([("", "any")], value="any", label=_("period"), elem_id="hg-history-period")
            status = gr.Dropdown([("", "")], value="", label=_("filter"), elem_id="hg-history-filter")
        table = gr.Dataframe(interactive=False, wrap=True, label=_("tab_history"), show_label=False,
                             elem_id="hg-history")
        ids = gr.State([])  # the batch id of each row shown
    return {"tab": tab, "search": search, "status": status, "period": period, "table": table, "ids": ids}


def _preview(value) -> dict:
    """The uploaded videos' thumbnails; the box is hidden while there are none."""
    files = _as_list(value)
    return gr.update(value=files or None, visible=bool(files))


# --- choosing the face -----------------------------------------------------------------------

def _show_frame(videos, faces: dict, evt: gr.SelectData) -> list:
    """The first frame of the preview clicked, to click the face on (its chosen point ringed)."""
    clips = _as_list(videos)
    if not isinstance(evt.index, int) or not 0 <= evt.index < len(clips):
        return [gr.skip(), gr.skip()]
    path = clips[evt.index]
    try:
        frame, width = _first_frame(path), probe_video(path).width
    except (HeyGemError, OSError, subprocess.SubprocessError):
        frame = None
    if frame is None:
        return [gr.update(visible=False), {}]
    shown = {"path": path, "frame": frame, "scale": width / frame.width}
    return [gr.update(value=_ringed(shown, faces.get(path)), visible=True), shown]


def _first_frame(path: str) -> Image.Image | None:
    """A video's (or image's) first frame, upright, at most PICKER_SIDE px wide (ffmpeg: the web
    process loads no image library of the render side)."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i", path, "-frames:v", "1",
           "-vf", f"scale='min({PICKER_SIDE},iw)':-2", "-f", "image2pipe", "-vcodec", "png", "-"]
    proc = subprocess.run(cmd, capture_output=True, timeout=60)
    if proc.returncode != 0 or not proc.stdout:
        return None
    return Image.open(io.BytesIO(proc.stdout)).convert("RGB")


def _choose_face(shown: dict, faces: dict, evt: gr.SelectData) -> list:
    """A click on the frame: that face, in the video's own pixels, for this video."""
    if not shown or not isinstance(evt.index, (list, tuple)):
        return [faces, gr.skip()]
    point = [round(float(v) * shown["scale"], 1) for v in evt.index[:2]]
    faces = {**faces, shown["path"]: point}
    return [faces, _ringed(shown, point)]


def _ringed(shown: dict, point: list[float] | None) -> Image.Image:
    frame = shown["frame"]
    if point is None:
        return frame
    frame = frame.copy()
    x, y = (v / shown["scale"] for v in point)
    radius = max(6, frame.width // 40)
    ImageDraw.Draw(frame).ellipse((x - radius, y - radius, x + radius, y + radius), outline=MARK,
                                  width=max(2, radius // 4))
    return frame


def faces_json(clips: list[str], faces: dict) -> str:
    """`POST /start_batch`'s `faces` for the clips in order: a point where one was clicked, else
    null (the largest); "" when none was."""
    if not any(faces.get(path) for path in clips):
        return ""
    return json.dumps([{"point": faces[path]} if faces.get(path) else None for path in clips])


# --- who and which batch -------------------------------------------------------------------

def _user(request: gr.Request | None) -> str | None:
    """The logged-in user (None when login is off): each user sees only their own batches."""
    return getattr(request, "username", None) if request is not None else None


def _lang(request: gr.Request | None) -> str:
    headers = getattr(request, "headers", None) or {}
    return lang_of(headers.get("accept-language"))


def belongs(batch: Batch, tab: str) -> bool:
    """Whether a tab's panel shows the batch: 多语言版本 one video with many audios, 单个视频 one
    item, 批量生成 every other (one item included: a one-file batch is still a batch)."""
    localised = batch.mode is BatchMode.ONE_VIDEO
    if tab == "localise":
        return localised
    if tab == "single":
        return not localised and len(batch.items) == 1
    return not localised


def _queued(runtime: Runtime, user: str | None) -> list[Batch]:
    """The unfinished batches in the order they run: the running one, then the line's order (FIFO
    unless a batch was moved to the front)."""
    if runtime.store.active_batch_id(user) is None:
        return []
    batches = [b for b in runtime.service.history(user, limit=QUEUE_SCAN) if not b.status.finished]
    order = {batch_id: n for n, batch_id in enumerate(runtime.store.queue_order())}
    batches.sort(key=lambda b: (order.get(b.batch_id, len(order)), b.created_at))
    batches.sort(key=lambda b: not any(i.status is ItemStatus.PROCESSING for i in b.items))  # running first
    return batches


def _pick(runtime: Runtime, user: str | None, views: dict, tab: str, queued: list[Batch]) -> str | None:
    """The batch a tab's panel shows: the first unfinished one of its kind (or started from it),
    else the one it showed, else its kind's latest. The history tab shows the row clicked."""
    if tab == "history":
        return views.get("history") or None
    mine = set(views.get(f"mine:{tab}", ()))
    for batch in queued:
        if belongs(batch, tab) or batch.batch_id in mine:
            return batch.batch_id
    if tab in views:
        return views[tab] or None
    latest = next((b for b in runtime.service.history(user, limit=QUEUE_SCAN)
                   if belongs(b, tab) or b.batch_id in mine), None)
    return latest.batch_id if latest else None


def _queue_entries(queued: list[Batch]) -> list[QueueEntry]:
    """The queue view's rows: a batch runs while one of its items does, else it waits."""
    def status(batch: Batch) -> str:
        running = any(i.status is ItemStatus.PROCESSING for i in batch.items)
        return "processing" if running else "queued"

    def runnable(batch: Batch) -> list:  # as the panel counts: a file refused at upload apart
        return [i for i in batch.items if not (i.status is ItemStatus.FAILED and i.started_at is None)]

    return [QueueEntry(b.batch_id, status(b), [i.name for i in b.items],
                       sum(i.status.finished for i in runnable(b)), len(runnable(b))) for b in queued]


def _snapshot(runtime: Runtime, batch_id: str | None, user: str | None) -> dict:
    """The batch's snapshot (cached by the store's version), or {} when there is none to show."""
    if not batch_id:
        return {}
    try:
        return runtime.snapshots.live(batch_id, user)
    except HeyGemError:
        return {}


# --- events --------------------------------------------------------------------------------

def _refresher(get_runtime: RuntimeGetter) -> Callable:
    """Timer tick (and after every action): redraw the queue and the tab's panels from the store."""
    def refresh(views: dict, tab: str, shown: str, offered: list | None, request: gr.Request) -> list:
        runtime, user, lang = get_runtime(), _user(request), _lang(request)
        queued = _queued(runtime, user)
        batch_id = _pick(runtime, user, views, tab, queued)
        views = {**views, tab: batch_id or ""}
        snap = _snapshot(runtime, batch_id, user)
        results = results_html(snap, lang, tab) if snap else ""
        running = bool(snap) and snap["status"] not in FINISHED
        again = bool(snap) and not running and any(i.get("retriable") for i in snap["items"])
        return [views, progress_html(snap, lang, tab), items_html(snap, lang) if snap else "",
                gr.skip() if results == shown else results, results,
                system_html((snap.get("system") if snap else None) or system_metrics(), lang),
                "\n".join(log_line(lang, line) for line in _log_lines(runtime, user)),
                gr.update(interactive=running, variant="stop" if running else "secondary"),
                gr.update(interactive=again), queue_html(_queue_entries(queued), lang, batch_id, runtime.store.paused()),
                *_line_updates(runtime, queued, lang), *_item_updates(snap, lang, offered)]

    return refresh


def _item_updates(snap: dict, lang: str, offered: list | None) -> list:
    """The radio of the files of the panel's batch that can still be cancelled one by one, its
    button, and what was offered; both skipped while the offer is the one last sent."""
    batch_id = snap.get("batch_id", "") if snap else ""
    open_items = [i for i in (snap.get("items") or []) if i["status"] in ("pending", "processing")] if snap else []
    choices = [[f'{i["index"] + 1}. {i["name"]} · {status_word(lang, i["status"])}', f'{batch_id}:{i["index"]}']
               for i in open_items]
    now = [batch_id, choices]
    if now == offered:
        return [gr.skip(), gr.skip(), gr.skip()]
    radio = {"choices": [tuple(c) for c in choices], "visible": bool(choices)}
    if not offered or offered[0] != batch_id:  # another batch: nothing of it is picked yet
        radio["value"] = None
    return [gr.update(**radio), gr.update(visible=bool(choices)), now]


def _line_updates(runtime: Runtime, queued: list[Batch], lang: str) -> list:
    """Pause or resume (whichever applies), and the waiting batches that can be moved to the front."""
    paused = runtime.store.paused()
    waiting = [b for b in queued[1:] if not any(i.status is ItemStatus.PROCESSING for i in b.items)]
    choices = [(f"{n}. {', '.join(i.name for i in b.items[:3])}{'…' if len(b.items) > 3 else ''}", b.batch_id)
               for n, b in enumerate(waiting, 2)]
    return [gr.update(visible=not paused), gr.update(visible=paused),
            gr.update(choices=choices or [(t(lang, "queue_none_waiting"), "")], interactive=bool(choices)),
            gr.update(interactive=bool(choices))]


def _log_lines(runtime: Runtime, user: str | None) -> list[str]:
    """The live log's last lines; with login on, only those about the user's own batches."""
    if user is None:
        return tail(runtime.settings.log_file, LOG_LINES)
    own = [batch.batch_id for batch in runtime.service.history(user, limit=LOG_BATCHES)]
    return tail_of_batches(runtime.settings.log_file, own, LOG_LINES)


def _submitter(get_runtime: RuntimeGetter, mode: BatchMode, tab: str) -> Callable:
    """A start button: queue a batch (while another runs too) and say where it stands."""
    def submit(audio, videos, engine: str, views: dict, faces: dict, request: gr.Request) -> dict:
        lang = _lang(request)
        audios, clips = _as_list(audio), _as_list(videos)
        if not audios or not clips:
            raise gr.Error(t(lang, "need_inputs"), title=t(lang, "error_title"))
        runtime = get_runtime()
        ahead = len(_queued(runtime, _user(request)))
        try:
            with ExitStack() as stack:
                uploads = [Upload(Path(p).name, stack.enter_context(open(p, "rb"))) for p in audios]
                files = [Upload(Path(p).name, stack.enter_context(open(p, "rb"))) for p in clips]
                batch_id, created = runtime.service.submit(uploads, files, engine=engine or "auto",
                                                           mode=mode.value, owner=_user(request) or "",
                                                           faces=faces_json(clips, faces))
        except HeyGemError as e:
            raise gr.Error(html.escape(_message(e, lang)), title=t(lang, "error_title")) from e
        note = t(lang, "queued_toast", ahead=ahead) if created else t(lang, "duplicate_toast")
        gr.Info(note, title=t(lang, "info_title"))
        mine = [*views.get(f"mine:{tab}", []), batch_id][-QUEUE_SCAN:]
        return {**views, tab: batch_id, f"mine:{tab}": mine}

    return submit


def _checker(get_runtime: RuntimeGetter, mode: BatchMode) -> Callable:
    """The check before queueing of the files picked so far, as the table beside them."""
    def check(audio, videos, engine: str, request: gr.Request) -> str:
        clips, audios, lang = _as_list(videos), _as_list(audio), _lang(request)
        if not clips and not audios:
            return ""
        inputs = [[InputFile(Path(p).name, Path(p)) for p in paths] for paths in (clips, audios)]
        try:
            report = get_runtime().preflight.check(*inputs, engine=engine or "auto", mode=mode.value)
        except HeyGemError as e:
            return f'<div class="hg-line hg-failed">{html.escape(t(lang, "check_failed", s=_message(e, lang)))}</div>'
        return preflight_html(report.as_dict(), lang)

    return check


def _message(error: HeyGemError, lang: str) -> str:
    return error.message_zh if lang == "zh" else error.message_en


def _as_list(value) -> list[str]:
    if not value:
        return []
    return [str(v) for v in (value if isinstance(value, list) else [value])]


def _action(get_runtime: RuntimeGetter, name: str) -> Callable:
    """Cancel or retry the batch on the tab's panel, and say what happened."""
    def act(views: dict, tab: str, request: gr.Request) -> None:
        batch_id, lang = views.get(tab), _lang(request)
        if not batch_id:
            return
        try:
            done = getattr(get_runtime().service, name)(batch_id, _user(request))
        except HeyGemError as e:
            raise gr.Error(html.escape(_message(e, lang)), title=t(lang, "error_title")) from e
        if name == "retry":
            note = t(lang, "retried_toast", n=done) if done else t(lang, "nothing_to_retry")
        else:
            note = t(lang, "cancelled_toast")
        gr.Info(note, title=t(lang, "info_title"))

    return act


def _cancel_one(get_runtime: RuntimeGetter) -> Callable:
    """Cancel the one file picked ("<batch id>:<index>"); the rest of its batch goes on. Says so,
    or that none was picked, or that the file had ended meanwhile; the pick is then cleared."""
    def act(picked: str, request: gr.Request) -> list:
        lang = _lang(request)
        batch_id, _, index = (picked or "").partition(":")
        if not batch_id or not index.isdigit():
            gr.Warning(t(lang, "cancel_pick_first"), title=t(lang, "toast_warning"))
            return [gr.skip(), gr.skip()]
        try:
            item = get_runtime().service.cancel_item(batch_id, int(index), _user(request))
        except HeyGemError as e:
            raise gr.Error(html.escape(_message(e, lang)), title=t(lang, "error_title")) from e
        if item.status is ItemStatus.CANCELLED or item.cancel_requested:
            gr.Info(t(lang, "cancelled_one_toast", s=item.name), title=t(lang, "info_title"))
        else:
            gr.Warning(t(lang, "cancel_too_late", s=item.name), title=t(lang, "toast_warning"))
        return ["", gr.update(value=None)]

    return act


# --- history -------------------------------------------------------------------------------

def _wire_history(get_runtime: RuntimeGetter, parts: dict, views: gr.State, tab: gr.State, refresh: Callable,
                  tick_inputs: list, panels: list, demo: gr.Blocks) -> None:
    """The history table loads with the page and on opening the tab, filters as one types or
    picks a status or a period, and a clicked row opens that batch on the panel below."""
    lister = _history(get_runtime)
    inputs = [parts["search"], parts["status"], parts["period"]]
    outputs = [parts["table"], parts["ids"], parts["status"], parts["period"]]
    demo.load(lister, inputs, outputs, show_progress=HIDDEN)
    parts["tab"].select(lister, inputs, outputs, show_progress=HIDDEN)
    for name in ("search", "status", "period"):
        parts[name].change(lister, inputs, outputs, show_progress=HIDDEN)
    parts["table"].select(_open_row, [parts["ids"], views], [views, tab], show_progress=HIDDEN).then(
        refresh, tick_inputs, panels, show_progress=HIDDEN)


def _open_row(ids: list[str], views: dict, evt: gr.SelectData) -> list:
    row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
    batch_id = ids[row] if isinstance(row, int) and 0 <= row < len(ids) else None
    return [{**views, "history": batch_id or views.get("history", "")}, "history"]


def period_start(period: str, now: float) -> float | None:
    """The earliest creation time (unix s) that the history's period keeps: today's local
    midnight, or so many days back from `now`; None for any time."""
    if period == "today":
        day = time.localtime(now)
        return time.mktime((day.tm_year, day.tm_mon, day.tm_mday, 0, 0, 0, 0, 0, -1))
    days = HISTORY_PERIOD_DAYS.get(period)
    return now - days * DAY_S if days else None


@dataclass(frozen=True)
class HistoryFilter:
    """What the history table keeps: a part of a file name, a batch status ("" any), a period
    (one of HISTORY_PERIODS)."""

    search: str = ""
    status: str = ""
    period: str = "any"

    def keeps(self, batch: Batch, now: float) -> bool:
        wanted, since = self.search.strip().lower(), period_start(self.period, now)
        if self.status and batch.status.value != self.status:
            return False
        if since is not None and batch.created_at < since:
            return False
        return not wanted or any(wanted in i.name.lower() for i in batch.items)


def history_rows(batches: list[Batch], lang: str, wanted: HistoryFilter,
                 now: float) -> tuple[list[list[str]], list[str]]:
    """The history table's rows (created, status, done of all, the first file names) of the
    batches `wanted` keeps, and each row's batch id."""
    rows, ids = [], []
    for b in batches:
        if not wanted.keeps(b, now):
            continue
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(b.created_at))
        names = ", ".join(i.name for i in b.items[:3]) + ("…" if len(b.items) > 3 else "")
        done = sum(i.status is ItemStatus.DONE for i in b.items)
        rows.append([when, status_word(lang, b.status.value), f"{done}/{len(b.items)}", names])
        ids.append(b.batch_id)
    return rows, ids


def _history(get_runtime: RuntimeGetter) -> Callable:
    def history(search: str, status: str, period: str, request: gr.Request) -> list:
        import pandas as pd

        lang = _lang(request)
        batches = get_runtime().service.history(_user(request), limit=HISTORY_LIMIT)
        rows, ids = history_rows(batches, lang, HistoryFilter(search or "", status or "", period or "any"),
                                 time.time())
        columns = [t(lang, k) for k in ("created", "status", "items", "file")]
        statuses = [(t(lang, "all"), ""), *[(status_word(lang, s), s) for s in HISTORY_STATUSES]]
        periods = [(t(lang, f"period_{p}"), p) for p in HISTORY_PERIODS]
        return [pd.DataFrame(rows, columns=columns), ids, gr.update(choices=statuses),
                gr.update(choices=periods)]

    return history
