"""The studio in headless Chromium (Debian's package, driven by Playwright; no browser download):
upload, the check beside each file before start, start, live bar, per-file table with the failure in red, playable results, the ZIP,
reattaching after a reload, and one batch from a double click. Screenshots go to test-artifacts/."""

from __future__ import annotations

import io
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
    make_samples.run_ffmpeg(["-y", "-i", str(speech_en), "-t", "3", str(speech)])
    names = {"teacher_01.mp4": presenter_clip, "teacher_02.mp4": presenter_clip,
             "broken.mp4": bad_inputs["truncated"]}
    videos = {}
    for name, source in names.items():
        videos[name] = folder / name
        shutil.copy(source, videos[name])
    return {"audio": speech, **videos}


def open_page(browser, server):
    page = browser.new_page(viewport={"width": 1280, "height": 1600}, accept_downloads=True)
    page.goto(server.url + "/")
    page.wait_for_selector("#hg-start", timeout=30_000)
    return page


def upload(page, inputs: dict[str, Path], videos: list[str]) -> None:
    page.set_input_files("#hg-audio input[type=file]", str(inputs["audio"]))
    page.set_input_files("#hg-videos input[type=file]", [str(inputs[v]) for v in videos])
    for name in videos:
        page.wait_for_selector(f"#hg-videos :text('{Path(name).stem}')", timeout=30_000)
    page.wait_for_function("() => !document.querySelector('#hg-audio [data-testid=file-upload]') || "
                           "document.querySelector('#hg-audio audio, #hg-audio .waveform-container, "
                           "#hg-audio [data-testid=waveform-controls]')", timeout=30_000)


def status(page) -> str:
    return page.get_attribute("#hg-status", "data-status") or ""


def rate(page) -> float:
    value = page.get_attribute("#hg-bar", "data-rate") if page.query_selector("#hg-bar") else None
    return float(value or 0.0)


def wait_status(page, wanted: set[str], timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if status(page) in wanted:
            return
        time.sleep(0.25)
    raise AssertionError(f"status stayed {status(page)!r}")


def batch_count(server) -> int:
    return len(httpx.get(f"{server.url}/api/batches", timeout=10).json())


def test_batch_in_the_browser(browser, server, inputs):
    ARTIFACTS.mkdir(exist_ok=True)
    page = open_page(browser, server)
    upload(page, inputs, ["teacher_01.mp4", "broken.mp4", "teacher_02.mp4"])
    # the check before queueing shows beside the files before start is pressed: broken.mp4 will fail
    page.wait_for_function("() => document.querySelectorAll('#hg-preflight tr[data-ok]').length == 4",
                           timeout=WAIT_S * 1000)
    checks = page.query_selector_all("#hg-preflight tr[data-ok]")
    assert [r.get_attribute("data-ok") for r in checks] == ["true", "false", "true", "true"]
    assert checks[1].query_selector(".hg-failed") is not None
    page.screenshot(path=str(ARTIFACTS / "batch_checked.png"), full_page=True)
    before = batch_count(server)
    page.dblclick("#hg-start")  # a double click must not make two batches
    wait_status(page, {"processing", "queued"}, timeout=60)
    rates = []
    shot = False
    while status(page) not in {"completed", "completed_with_errors", "failed", "cancelled"}:
        rates.append(rate(page))
        if not shot and page.query_selector("#hg-frames") and rate(page) > 0.3:
            page.screenshot(path=str(ARTIFACTS / "batch_running.png"), full_page=True)
            shot = True
        assert len(rates) < WAIT_S * 4, "batch did not end"
        time.sleep(0.25)
    page.wait_for_function("() => document.querySelectorAll('#hg-results video').length == 2", timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "batch_done.png"), full_page=True)
    assert batch_count(server) == before + 1
    assert status(page) == "completed_with_errors"
    assert rate(page) == 1.0 and rates == sorted(rates)
    assert page.inner_text("#hg-count") == "3/3"
    rows = page.query_selector_all("#hg-items tr[data-status]")
    assert [r.get_attribute("data-status") for r in rows] == ["done", "failed", "done"]
    failed = rows[1].query_selector(".hg-failed")
    assert failed is not None and "rgb(220, 38, 38)" in failed.evaluate("e => getComputedStyle(e).color")
    assert "video_unreadable" in rows[1].inner_text() or "无法读取视频文件" in rows[1].inner_text()
    durations = page.eval_on_selector_all(
        "#hg-results video",
        "els => Promise.all(els.map(v => v.readyState >= 1 ? v.duration : new Promise(r => "
        "{ v.addEventListener('loadedmetadata', () => r(v.duration)); v.load(); })))")
    assert len(durations) == 2 and all(2.5 < d < 3.5 for d in durations)
    with page.expect_download(timeout=60_000) as download:
        page.click("#hg-zip")
    names = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes())).namelist()
    assert sorted(names) == ["manifest.csv", "manifest.json", "teacher_01_synced.mp4", "teacher_02_synced.mp4"]
    with page.expect_download(timeout=60_000) as download:
        page.click("#hg-manifest")
    manifest = Path(download.value.path()).read_bytes()
    assert manifest.startswith(b"\xef\xbb\xbf") and b"video_unreadable" in manifest
    page.close()


def test_reload_reattaches_to_the_running_batch(browser, server, inputs):
    page = open_page(browser, server)
    upload(page, inputs, ["teacher_01.mp4", "teacher_02.mp4"])
    page.click("#hg-start")
    wait_status(page, {"processing"}, timeout=60)
    page.wait_for_function("() => (document.querySelector('#hg-bar')?.dataset.rate || 0) > 0", timeout=60_000)
    page.reload()
    page.wait_for_selector("#hg-bar", timeout=30_000)
    wait_status(page, {"processing", "completed"}, timeout=30)
    first = rate(page)
    page.screenshot(path=str(ARTIFACTS / "after_reload.png"), full_page=True)
    wait_status(page, {"completed"})
    assert rate(page) == 1.0 > first or first == 1.0
    page.close()


def test_lost_connection_keeps_the_panel_and_says_so(browser, tmp_path):
    srv = Server(tmp_path / "workspace").start()
    try:
        page = browser.new_page()
        page.goto(srv.url + "/")
        page.wait_for_selector("#hg-status", timeout=30_000)
        before = page.inner_text("#hg-status")
        srv.kill()
        page.wait_for_selector("#hg-offline", state="visible", timeout=15_000)
        assert "连接中断,正在重试…" in page.inner_text("#hg-offline")
        assert page.inner_text("#hg-status") == before
        srv.start()
        page.wait_for_selector("#hg-offline", state="hidden", timeout=15_000)
        page.close()
    finally:
        srv.stop()


HOSTILE_NAMES = ['<img src=x onerror=alert(1)>.mp4', '"><svg onload=alert(2)>.mp4',
                 "<script>alert(3)</script>讲稿.mp4"]


def test_hostile_file_names_are_shown_as_text_everywhere(browser, server, inputs):
    files = [("audio", ("<b>lecture</b>.wav", inputs["audio"].read_bytes()))]
    files += [("videos", (name, inputs["teacher_01.mp4"].read_bytes())) for name in HOSTILE_NAMES]
    batch_id = httpx.post(f"{server.url}/start_batch", files=files, timeout=60).json()["batch_id"]
    deadline = time.monotonic() + WAIT_S
    while httpx.get(f"{server.url}/api/progress/{batch_id}", timeout=10).json()["status"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.25)
    page = open_page(browser, server)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.wait_for_function("() => document.querySelectorAll('#hg-items tr[data-status=done]').length == 3",
                           timeout=30_000)
    page.click("#hg-tab-history-button" if page.query_selector("#hg-tab-history-button") else "text=历史记录")
    page.click("text=刷新")
    page.wait_for_selector(".hg-table :text('alert(1)')", timeout=30_000)
    page.wait_for_timeout(1000)
    injected = page.evaluate("""() => [...document.querySelectorAll('img[src="x"], svg[onload], script')]
        .filter(e => !e.src || !e.src.startsWith(location.origin + '/assets'))
        .filter(e => e.tagName !== 'SCRIPT' || e.textContent.includes('alert(')).length""")
    assert injected == 0 and dialogs == []
    text = page.inner_text("body")
    assert all(name.rsplit(".", 1)[0] in text for name in HOSTILE_NAMES[:1])
    page.close()
