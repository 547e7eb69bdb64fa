"""The studio in headless Chromium (Debian's package, driven by Playwright; no browser download).

The daily path, in a zh-CN and an en-US browser: open, try an example, queue a second batch while
the first runs, cancel one file of it, watch the one progress view go up to the end, reload mid-run,
cancel the rest, retry, download the ZIP and the manifest, open the batch from the history by
clicking its row, keep today's; on every step no word of the other language on the rendered page
(Gradio's own strings, tooltips, screen-reader labels and toasts included). The languages tab's
example fills its inputs. A face is chosen by clicking it on the preview.
A 390x844 phone shows the reasons. Screenshots go to test-artifacts/."""

from __future__ import annotations

import csv
import io
import re
import shutil
import time
import zipfile
from pathlib import Path

import httpx
import make_samples
import pytest

from tests.server_util import ROOT, WAIT_S, Server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = ROOT / "test-artifacts"
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
CHROME_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ENDED = {"completed", "completed_with_errors", "failed", "cancelled"}
DESKTOP = {"width": 1400, "height": 1000}
PHONE = {"width": 390, "height": 844}
# Names and units that are the same in both languages: the brand, the engine, file-size units.
NEUTRAL = {"HeyGem", "Wav2Lip", "KB", "MB", "GB"}
CJK = re.compile(r"[\u3400-\u9fff\uff00-\uffef\u3000-\u303f]")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("ui-workspace")).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def inputs(samples_dir, presenter_clip, bad_inputs, speech_en) -> dict[str, Path]:
    folder = samples_dir / "ui"
    folder.mkdir(exist_ok=True)
    speech = folder / "lecture.wav"
    make_samples.run_ffmpeg(["-y", "-i", str(speech_en), "-t", "4", str(speech)])
    names = {"teacher_01.mp4": presenter_clip, "teacher_02.mp4": presenter_clip,
             "broken.mp4": bad_inputs["truncated"]}
    videos = {}
    for name, source in names.items():
        videos[name] = folder / name
        shutil.copy(source, videos[name])
    return {"audio": speech, **videos}


def open_page(browser, server, locale: str = "zh-CN", viewport: dict | None = None):
    context = browser.new_context(locale=locale, viewport=viewport or DESKTOP, accept_downloads=True)
    page = context.new_page()
    page.goto(server.url + "/")
    page.wait_for_selector("#hg-start", timeout=30_000)
    page.wait_for_selector("#hg-status", timeout=30_000)
    return page


def close(page) -> None:
    page.context.close()


def status(page) -> str:
    return page.get_attribute("#hg-status", "data-status") or ""


def shown_batch(page) -> str:
    return page.get_attribute("#hg-status", "data-batch") or ""


def rate(page) -> float:
    value = page.get_attribute("#hg-bar", "data-rate") if page.query_selector("#hg-bar") else None
    return float(value or 0.0)


def wait_status(page, wanted: set[str], timeout: float = WAIT_S, batch: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if status(page) in wanted and (batch is None or shown_batch(page) == batch):
            return
        time.sleep(0.25)
    raise AssertionError(f"status stayed {status(page)!r} on {shown_batch(page)!r}")


def batches(server) -> list[dict]:
    return httpx.get(f"{server.url}/api/batches", timeout=10).json()


def progress(server, batch_id: str) -> dict:
    return httpx.get(f"{server.url}/api/progress/{batch_id}", timeout=10).json()


def cancel_one_file(page, server, batch_id: str, target: dict) -> None:
    """Pick `target` (a waiting item) on the panel's radio and cancel it alone: it ends cancelled
    while the batch has not ended, and the page lists it so."""
    choice = page.locator("#hg-item-pick label", has_text=target["name"])
    choice.click()
    page.wait_for_function("n => [...document.querySelectorAll('#hg-item-pick input')]"
                           ".some(e => e.checked && e.parentElement.textContent.includes(n))", arg=target["name"],
                           timeout=10_000)
    page.click("#hg-item-cancel")
    deadline = time.monotonic() + 30
    while (snap := progress(server, batch_id))["items"][target["index"]]["status"] != "cancelled":
        assert time.monotonic() < deadline, snap["items"]
        time.sleep(0.2)
    assert snap["status"] not in ENDED, snap["items"]  # the others go on
    page.wait_for_selector("#hg-items tr[data-status=cancelled]", timeout=30_000)
    page.locator(".toast-body, [data-testid=toast-body]", has_text=target["name"]).first.wait_for(timeout=30_000)


def running(server, batch_id: str) -> bool:
    return any(i["status"] == "processing" for i in progress(server, batch_id)["items"])


def one_more_done(server, batch_id: str, done: int) -> None:
    """Wait until more than `done` files of the batch are made."""
    deadline = time.monotonic() + WAIT_S
    while True:
        snap = progress(server, batch_id)
        if sum(i["status"] == "done" for i in snap["items"]) > done:
            return
        assert time.monotonic() < deadline and snap["status"] not in ENDED, snap["items"]
        time.sleep(0.2)


PAGE_WORDS = """() => {  // what innerText shows, and the words that visible elements carry
    const attributes = ['title', 'placeholder', 'aria-label', 'alt'];
    const words = [document.body.innerText];
    for (const e of document.querySelectorAll(attributes.map(a => `[${a}]`).join(','))) {
        if (!e.checkVisibility()) continue;
        for (const a of attributes) { const v = e.getAttribute(a); if (v) words.push(v); }
    }
    return words.join('\\n'); }"""


def foreign_words(page, locale: str, names: set[str]) -> list[str]:
    """Words of the other language in the rendered page's text (what innerText shows: closed
    folds and hidden tabs aside) and in the title, placeholder, aria-label and alt of its visible
    elements (a tooltip, what a screen reader says), file names and NEUTRAL words apart."""
    text = page.evaluate(PAGE_WORDS)
    for name in sorted(names, key=len, reverse=True):
        text = text.replace(name, " ")
    if locale.startswith("zh"):
        return sorted({w for w in re.findall(r"[A-Za-z][A-Za-z0-9]+", text) if w not in NEUTRAL})
    return sorted(set(CJK.findall(text)))


def file_names(inputs: dict[str, Path]) -> set[str]:
    names = {"presenter_a.mp4", "presenter_b.mp4", "speech.wav", "speech_zh.wav", *(p.name for p in inputs.values()),
             *(f"blocker_{locale}{end}" for locale in ("zh-CN", "en-US") for end in (".mp4", "_0.wav", "_1.wav", "_2.wav"))}
    names |= {n.rsplit(".", 1)[0] for n in names} | {".mp4", ".wav", "mp4", "wav"}
    return names | {f"{n.rsplit('.', 1)[0]}_synced.mp4" for n in names}


def queue_blocker(server, inputs: dict[str, Path], tag: str) -> str:
    """A one-video, three-audio batch (the 多语言版本 tab's kind, not on the batch tab's panel)
    that holds the worker while the page queues its two batches behind it."""
    speech = inputs["audio"].read_bytes()
    files = [("audio", (f"{tag}_{n}.wav", speech)) for n in range(3)]
    files.append(("videos", (f"{tag}.mp4", inputs["teacher_01.mp4"].read_bytes())))
    response = httpx.post(f"{server.url}/start_batch", files=files, data={"mode": "one_video"}, timeout=60)
    return response.json()["batch_id"]


class Watch:
    """The panel's batch, status and rate seen on each look, per batch, to check that the one
    progress view only goes up."""

    def __init__(self, page) -> None:
        self.page = page
        self.rates: dict[str, list[float]] = {}

    def look(self) -> tuple[str, str]:
        """The panel's batch, status and rate, read at once (the panel may change between reads)."""
        batch, now, value = self.page.evaluate("""() => {
            const s = document.querySelector('#hg-status'), bar = document.querySelector('#hg-bar');
            return [s?.dataset.batch || '', s?.dataset.status || '', bar ? bar.dataset.rate : null]; }""")
        if batch and value is not None:
            self.rates.setdefault(batch, []).append(float(value))
        return batch, now

    def until(self, done, timeout: float = WAIT_S) -> None:
        deadline = time.monotonic() + timeout
        while not done(*self.look()):
            assert time.monotonic() < deadline, f"the panel stayed at {self.look()}"
            time.sleep(0.2)


@pytest.mark.parametrize("locale", ["zh-CN", "en-US"])
def test_the_daily_path(browser, server, inputs, locale):
    ARTIFACTS.mkdir(exist_ok=True)
    names = file_names(inputs)
    zh = locale.startswith("zh")
    page = open_page(browser, server, locale)
    assert foreign_words(page, locale, names) == []
    assert not page.is_enabled("#hg-cancel")  # nothing runs: cancel is off
    # Pause the queue and resume it: the page says so, in its language.
    page.click("#hg-queue-pause")
    page.wait_for_selector("#hg-queue-paused", timeout=30_000)
    page.wait_for_selector("#hg-queue-resume", state="visible", timeout=30_000)
    assert httpx.get(f"{server.url}/api/queue", timeout=10).json()["paused"] is True
    assert foreign_words(page, locale, names) == []
    page.click("#hg-queue-resume")
    page.wait_for_selector("#hg-queue-paused", state="detached", timeout=30_000)
    assert httpx.get(f"{server.url}/api/queue", timeout=10).json()["paused"] is False
    blocker = queue_blocker(server, inputs, f"blocker_{locale}")

    # Try an example: it fills the speech and two presenters; start it.
    page.click("#hg-examples-many tr.tr-body")
    page.wait_for_selector("#hg-videos :text('presenter_b')", timeout=30_000)
    page.wait_for_selector("#hg-audio audio, #hg-audio [data-testid=waveform-controls]", timeout=30_000,
                           state="attached")
    before = {b["batch_id"] for b in batches(server)}
    page.click("#hg-start")
    page.wait_for_selector(".toast-body, [data-testid=toast-body]", timeout=30_000)
    assert foreign_words(page, locale, names) == []  # the toast too
    deadline = time.monotonic() + 60
    while len({b["batch_id"] for b in batches(server)} - before) < 1:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    first = ({b["batch_id"] for b in batches(server)} - before).pop()

    # Queue a second batch while the first runs: a longer speech, two more presenters, a broken file.
    page.click(f"#hg-audio button[title='{'清除' if zh else 'Clear'}']")  # the example's speech out
    page.set_input_files("#hg-audio input[type=file]", str(inputs["audio"]))
    page.set_input_files("#hg-videos input[type=file]",
                         [str(inputs[n]) for n in ("teacher_01.mp4", "broken.mp4", "teacher_02.mp4")])
    page.wait_for_selector("#hg-videos :text('teacher_02')", timeout=30_000)
    # the check before queueing shows beside the files before start is pressed: broken.mp4 will fail
    page.wait_for_selector('#hg-check #hg-preflight tr[data-ok="false"]', timeout=WAIT_S * 1000)
    assert foreign_words(page, locale, names) == []  # the check's table too
    page.wait_for_timeout(1500)  # the audio's upload
    assert page.is_enabled("#hg-start")
    page.click("#hg-start")
    deadline = time.monotonic() + 60
    while len({b["batch_id"] for b in batches(server)} - before) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    second = ({b["batch_id"] for b in batches(server)} - before - {first}).pop()

    # The queue lists all three in order, the one running first; the panel shows the first.
    watch = Watch(page)
    page.wait_for_function(f"() => document.querySelector('#hg-queue-list li[data-batch=\"{second}\"]')",
                           timeout=30_000)
    order = [r.get_attribute("data-batch") for r in page.query_selector_all("#hg-queue-list li")]
    if blocker in order:
        assert order == [blocker, first, second], (order, blocker, first, second, [(b["batch_id"][:6], b.get("created_at"), b["status"], b["total_count"]) for b in batches(server)])
        assert page.get_attribute("#hg-queue-list li:first-child", "data-status") == "processing"
        assert shown_batch(page) == first and status(page) == "queued"
    else:  # the blocker ended meanwhile (a fast machine): the first runs
        assert order[-1] == second
    # Cancel one waiting file of it: that file alone ends cancelled, the batch goes on. The line is
    # paused as soon as the batch starts (its running file finishes, no new one starts): a file here
    # takes a second or so, and the file picked must still be waiting when the click lands.
    deadline = time.monotonic() + WAIT_S
    while progress(server, second)["items"][0]["status"] == "pending":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    page.click("#hg-queue-pause")
    page.wait_for_selector("#hg-queue-resume", state="visible", timeout=30_000)
    watch.until(lambda batch, now: batch == second and now == "processing", timeout=WAIT_S)
    waiting = [i for i in progress(server, second)["items"] if i["status"] == "pending"]
    assert len(waiting) >= 2, progress(server, second)["items"]  # one to cancel, one to make after
    cancel_one_file(page, server, second, waiting[-1])
    assert foreign_words(page, locale, names) == []  # its toast too
    page.screenshot(path=str(ARTIFACTS / f"file_cancelled_{locale}.png"), full_page=True)
    deadline = time.monotonic() + WAIT_S
    while "processing" in (statuses := [i["status"] for i in progress(server, second)["items"]]):
        assert time.monotonic() < deadline  # paused: the running file ends, no other starts
        time.sleep(0.2)
    done = statuses.count("done")
    # Resumed, the next file starts; the line is paused again as it does, so that one file is still
    # waiting for the cancel of the whole batch below.
    page.click("#hg-queue-resume")
    deadline = time.monotonic() + WAIT_S
    while "processing" not in [i["status"] for i in progress(server, second)["items"]]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    page.click("#hg-queue-pause")

    shot = ARTIFACTS / f"batch_running_desktop_{locale}.png"
    watch.until(lambda batch, now: batch != second or now in ENDED or not running(server, second) or (
        page.query_selector("#hg-frames") is not None and rate(page) > 0.15))
    if status(page) == "processing" and page.query_selector("#hg-frames") is not None:
        page.screenshot(path=str(shot), full_page=True)
    assert foreign_words(page, locale, names) == []

    # Reload mid-run: the same batch, the same view, no lower.
    seen = rate(page)
    page.reload()
    page.wait_for_selector("#hg-bar", timeout=30_000)
    watch.until(lambda batch, now: batch == second, timeout=30)
    assert rate(page) >= seen
    assert page.query_selector("#hg-start") and page.is_enabled("#hg-start")
    one_more_done(server, second, done)  # resumed, the rest of the batch went on

    # Cancel the rest, then retry: the cancelled files are made after all.
    if status(page) == "processing":
        page.click("#hg-cancel")
    wait_status(page, ENDED, timeout=60, batch=second)
    page.click("#hg-queue-resume")
    page.wait_for_selector("#hg-queue-pause", state="visible", timeout=30_000)
    snap = progress(server, second)
    assert snap["status"] in ENDED and snap["cancelled_count"] >= 1  # the file cancelled alone at least
    cancelled = snap["cancelled_count"]
    assert (f"{cancelled} 个已取消" if zh else f"{cancelled} cancelled") in page.inner_text("#hg-notice")
    page.wait_for_function("() => !document.querySelector('#hg-retry').disabled", timeout=30_000)
    page.click("#hg-retry")
    page.wait_for_selector(".toast-body, [data-testid=toast-body]", timeout=30_000)
    assert foreign_words(page, locale, names) == []
    # the panel has caught up with the retry once no file is listed cancelled (it may end within a tick)
    watch.until(lambda batch, now: batch == second and page.query_selector("#hg-items tr[data-status=cancelled]")
                is None, timeout=60)
    watch.rates[second] = []  # a retry is a new run, from its own start
    watch.until(lambda batch, now: batch == second and now in ENDED
                and page.query_selector("#hg-zip") is not None)

    assert status(page) == "completed_with_errors"
    for batch, rates in watch.rates.items():
        assert rates == sorted(rates), f"the view went back on {batch}: {rates}"
    assert rate(page) == 1.0
    count = page.query_selector("#hg-count")
    # broken.mp4 was refused at upload: a retry leaves it, it is not counted but said apart
    assert (count.get_attribute("data-done"), count.get_attribute("data-total")) == ("4", "4")
    assert page.query_selector("#hg-rejected") is not None
    rows = page.query_selector_all("#hg-items tr[data-status]")
    assert [r.get_attribute("data-status") for r in rows] == ["done", "done", "done", "failed", "done"]
    reason = rows[3].query_selector(".hg-reason")
    assert "rgb(220, 38, 38)" in reason.evaluate("e => getComputedStyle(e).color")
    sentence = reason.evaluate("e => e.firstChild.textContent")
    assert sentence == ("无法读取视频文件" if zh else "The video file cannot be read")
    assert reason.query_selector("details") is not None  # the detail, one click away
    page.wait_for_function("() => document.querySelectorAll('#hg-results video').length == 4", timeout=30_000)
    assert all("#t=" in (v.get_attribute("src") or "") for v in page.query_selector_all("#hg-results video"))
    assert foreign_words(page, locale, names) == []
    page.screenshot(path=str(ARTIFACTS / f"batch_done_{locale}.png"), full_page=True)

    with page.expect_download(timeout=60_000) as download:
        page.click("#hg-zip")
    zipped = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes())).namelist()
    assert "manifest.csv" in zipped and "teacher_01_synced.mp4" in zipped and len(zipped) == 6
    with page.expect_download(timeout=60_000) as download:
        page.click("#hg-manifest")
    manifest = Path(download.value.path()).read_bytes()
    assert manifest.startswith(b"\xef\xbb\xbf") and b"video_unreadable" in manifest
    assert len(list(csv.reader(io.StringIO(manifest.decode("utf-8-sig"))))) == 6
    with page.expect_download(timeout=60_000) as download:
        page.click("#hg-manifest-json")
    assert b"video_unreadable" in Path(download.value.path()).read_bytes()

    # History: loaded on open; a click on a row opens that batch below.
    page.click("#hg-tab-history-button")
    last_row = len(batches(server)) - 1  # every batch so far, newest first
    page.wait_for_selector(f"#hg-history [data-testid='cell-{last_row}-0']", timeout=30_000)
    for _ in range(3):  # a click while the table redraws (the tab's own reload of it) is lost
        page.click("#hg-history [data-testid='cell-1-0']")  # the second row: the first batch
        try:
            wait_status(page, {"completed"}, timeout=15, batch=first)
            break
        except AssertionError:
            continue
    wait_status(page, {"completed"}, timeout=15, batch=first)
    assert foreign_words(page, locale, names) == []
    # The date filter: today's batches are every one made here; none refused, no error.
    page.click("#hg-history-period input")
    page.get_by_role("option", name="今天" if zh else "Today").click()
    page.wait_for_function("v => document.querySelector('#hg-history-period input').value == v",
                           arg="今天" if zh else "Today", timeout=10_000)
    page.wait_for_timeout(1000)
    page.wait_for_selector(f"#hg-history [data-testid='cell-{last_row}-0']", timeout=30_000)
    assert page.locator(".toast-title.error").count() == 0
    assert foreign_words(page, locale, names) == []
    close(page)


@pytest.mark.parametrize("locale", ["zh-CN", "en-US"])
def test_a_phone_shows_the_reasons_and_every_tab(browser, server, inputs, locale):
    files = [("audio", ("lecture.wav", inputs["audio"].read_bytes()))]
    clips = ["teacher_01.mp4", "broken.mp4", "teacher_02.mp4", "teacher_01.mp4"]
    clips += ["teacher_02.mp4"] * (locale != "zh-CN")  # other inputs: not the other locale's batch again
    files += [("videos", (f"phone_{locale}_{i}_{n}", inputs[n].read_bytes())) for i, n in enumerate(clips)]
    batch_id = httpx.post(f"{server.url}/start_batch", files=files, timeout=60).json()["batch_id"]
    page = open_page(browser, server, locale, PHONE)
    try:
        tabs = page.query_selector_all("[role=tablist] button[role=tab]")
        assert len(tabs) == 4 and all(t.is_visible() for t in tabs)
        wait_status(page, {"processing", *ENDED}, timeout=60, batch=batch_id)
        page.wait_for_function("() => document.querySelector('#hg-bar')?.dataset.rate > 0.1", timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / f"batch_running_phone_{locale}.png"), full_page=True)
        reason = page.wait_for_selector("#hg-items tr[data-status=failed] .hg-reason", timeout=30_000)
        box = reason.bounding_box()
        assert box is not None and box["width"] > 40 and box["x"] + box["width"] <= PHONE["width"]
        assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
        assert foreign_words(page, locale, file_names(inputs) | {f"phone_{locale}_{i}_" for i in range(5)}) == []
        assert shown_batch(page) == batch_id
    finally:
        httpx.post(f"{server.url}/api/batches/{batch_id}/cancel", timeout=10)
        close(page)
        deadline = time.monotonic() + 60  # the running file stops within a few frames
        while httpx.get(f"{server.url}/api/progress/{batch_id}", timeout=10).json()["status"] not in ENDED:
            assert time.monotonic() < deadline
            time.sleep(0.25)


@pytest.mark.parametrize("locale", ["zh-CN", "en-US"])
def test_the_languages_tab_has_an_example_of_one_video_and_two_speeches(browser, server, inputs, locale):
    page = open_page(browser, server, locale)
    try:
        page.click("#hg-tab-localise-button")
        page.click("#hg-examples-localise tr.tr-body")
        page.wait_for_selector("#hg-localise-video :text('presenter_a')", timeout=30_000)
        page.wait_for_selector("#hg-localise-audios :text('speech_zh')", timeout=30_000)
        # the check before queueing: the video and both speeches can be made
        page.wait_for_function("() => document.querySelectorAll('#hg-localise-check tr[data-ok=\"true\"]').length == 3",
                               timeout=WAIT_S * 1000)
        assert foreign_words(page, locale, file_names(inputs)) == []
        page.screenshot(path=str(ARTIFACTS / f"languages_example_{locale}.png"), full_page=True)
    finally:
        close(page)


def test_lost_connection_keeps_the_panel_and_says_so(browser, tmp_path):
    srv = Server(tmp_path / "workspace").start()
    try:
        page = open_page(browser, srv, "zh-CN")
        before = page.inner_text("#hg-status")
        srv.kill()
        page.wait_for_selector("#hg-offline", state="visible", timeout=15_000)
        assert page.inner_text("#hg-offline") == "连接中断,正在重试…"
        assert page.inner_text("#hg-status") == before
        srv.start()
        page.wait_for_selector("#hg-offline", state="hidden", timeout=15_000)
        close(page)
    finally:
        srv.stop()


HOSTILE_NAMES = ['<img src=x onerror=alert(1)>.mp4', '"><svg onload=alert(2)>.mp4',
                 "<script>alert(3)</script>讲稿.mp4"]


def test_hostile_file_names_are_shown_as_text_everywhere(browser, server, inputs):
    files = [("audio", ("<b>lecture</b>.wav", inputs["audio"].read_bytes()))]
    files += [("videos", (name, inputs["teacher_01.mp4"].read_bytes())) for name in HOSTILE_NAMES]
    batch_id = httpx.post(f"{server.url}/start_batch", files=files, timeout=60).json()["batch_id"]
    deadline = time.monotonic() + WAIT_S
    while httpx.get(f"{server.url}/api/progress/{batch_id}", timeout=10).json()["status"] not in ENDED:
        assert time.monotonic() < deadline
        time.sleep(0.25)
    page = open_page(browser, server, "zh-CN")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.wait_for_function("() => document.querySelectorAll('#hg-items tr[data-status=done]').length == 3",
                           timeout=30_000)
    page.click("#hg-tab-history-button")
    page.wait_for_selector("#hg-history [role=gridcell]:has-text('alert(1)')", timeout=30_000)
    page.wait_for_timeout(1000)
    injected = page.evaluate("""() => [...document.querySelectorAll('img[src="x"], svg[onload], script')]
        .filter(e => !e.src || !e.src.startsWith(location.origin + '/assets'))
        .filter(e => e.tagName !== 'SCRIPT' || e.textContent.includes('alert(')).length""")
    assert injected == 0 and dialogs == []
    text = page.inner_text("body")
    assert all(name.rsplit(".", 1)[0] in text for name in HOSTILE_NAMES[:1])
    close(page)


@pytest.mark.parametrize("locale", ["zh-CN", "en-US"])
def test_the_face_is_chosen_by_clicking_it_on_the_preview(browser, inputs, locale, tmp_path):
    """Click a presenter on the preview, then the face on its first frame: the frame is ringed
    there, and the batch's item carries that point in the video's own pixels. A server of its
    own, so the panel shows no other test's batch."""
    server = Server(tmp_path / "workspace").start()
    try:
        choose_a_face(browser, server, inputs, locale)
    finally:
        server.stop()


def choose_a_face(browser, server, inputs: dict[str, Path], locale: str) -> None:
    page = open_page(browser, server, locale)
    page.set_input_files("#hg-audio input[type=file]", str(inputs["audio"]))
    page.set_input_files("#hg-videos input[type=file]", str(inputs["teacher_01.mp4"]))
    page.locator("#hg-preview .thumbnail-item, #hg-preview button.thumbnail-lg, #hg-preview img").first.click()
    picture = page.locator("#hg-face-pick img").first
    picture.wait_for(timeout=30_000)
    before = picture.get_attribute("src")
    box = picture.bounding_box()
    picture.click(position={"x": 0.5 * box["width"], "y": 0.35 * box["height"]})  # on the astronaut's face
    page.wait_for_function("s => { const i = document.querySelector('#hg-face-pick img'); return i && i.src !== s; }",
                           arg=before, timeout=30_000)  # the ring drawn where the click was
    page.locator("#hg-face-pick").screenshot(path=str(ARTIFACTS / f"face_pick_{locale}.png"))
    assert foreign_words(page, locale, file_names(inputs)) == []
    known = {b["batch_id"] for b in batches(server)}
    page.click("#hg-start")
    deadline = time.monotonic() + 60
    while not (new := {b["batch_id"] for b in batches(server)} - known):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    batch_id = new.pop()
    face = progress(server, batch_id)["items"][0]["face"]
    width, height = 640, 360  # the presenter clip's own pixels
    assert face is not None and abs(face["point"][0] - 0.5 * width) < 0.05 * width, face
    assert abs(face["point"][1] - 0.35 * height) < 0.05 * height, face
    while (snap := progress(server, batch_id))["status"] not in ENDED:
        assert time.monotonic() < deadline + WAIT_S
        time.sleep(0.25)
    assert snap["status"] == "completed", snap["items"]  # the face at that point was found and lip-synced
    close(page)
