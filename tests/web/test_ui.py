"""The Blocks app and its panels without a browser: what build_ui sets up, and the HTML each panel
draws from a snapshot."""

from __future__ import annotations

import json
import re

import pytest

from heygem_core.config import get_settings
from heygem_core.errors import ErrorCode, HeyGemError
from heygem_web.ui import panels
from heygem_web.ui import studio as ui
from heygem_web.ui.text import TEXT, i18n_translations, lang_of, log_line, reason_text, status_word

BATCH = "a" * 32


def item(name: str, status: str, **fields) -> dict:
    return {"name": name, "status": status, "frames_done": fields.pop("frames_done", 0), "frames_total": 100,
            "duration_s": fields.pop("duration_s", None), "error_code": None, "error": None,
            "output_url": None, **fields}


def snap(status: str, items: list[dict], **fields) -> dict:
    finished = sum(i["status"] in ("done", "failed", "cancelled") for i in items)
    return {"batch_id": BATCH, "status": status, "progress_rate": fields.pop("rate", 0.0), "items": items,
            "processed_count": finished, "total_count": len(items),
            "succeeded_count": sum(i["status"] == "done" for i in items),
            "failed_count": sum(i["status"] == "failed" for i in items),
            "cancelled_count": sum(i["status"] == "cancelled" for i in items),
            "current_video": None, "current_frame": 0, "current_total_frames": 0, "eta_seconds": None,
            "mode": "one_audio", **fields}


def rejected(name: str) -> dict:
    error = HeyGemError(ErrorCode.VIDEO_UNREADABLE, f"{name}: moov atom not found")
    return item(name, "failed", error_code=error.code.value, error=error.message)


def test_idle_gradio_queue_polls_every_50_ms_not_every_1_ms() -> None:
    demo = ui.build_ui(lambda: None, get_settings())  # the runtime is only asked for at event time
    assert demo._queue.sleep_when_free == ui.QUEUE_POLL_S
    assert demo._queue.progress_update_sleep_when_free >= ui.QUEUE_POLL_S


def test_no_event_shows_gradios_own_progress() -> None:
    demo = ui.build_ui(lambda: None, get_settings())
    shown = [fn for fn in demo.fns.values() if fn.show_progress != "hidden"]
    assert shown == []


def test_a_file_refused_at_upload_is_not_counted_as_processed() -> None:
    page = panels.progress_html(snap("processing", [rejected("broken.mp4"), item("a.mp4", "processing"),
                                                    item("b.mp4", "pending")]), "zh")
    assert 'data-done="0" data-total="2"' in page and "已处理 0/2" in page
    assert 'id="hg-rejected"' in page and "1 个文件无法处理" in page
    waiting = panels.progress_html(snap("processing", [rejected("broken.mp4"), item("a.mp4", "pending")]), "en")
    assert 'data-status="queued"' in waiting  # the store says processing: a file has ended


def test_an_all_failed_batch_has_a_red_bar_and_a_cancelled_one_a_grey_one() -> None:
    failed = panels.progress_html(snap("failed", [rejected("x.mp4")], rate=1.0), "en")
    assert 'class="hg-bad"' in failed and "hg-ok" not in failed
    cancelled = panels.progress_html(snap("cancelled", [item("a.mp4", "done", duration_s=2.0),
                                                        item("b.mp4", "cancelled"), item("c.mp4", "cancelled")],
                                          rate=1.0), "zh")
    assert 'class="hg-off"' in cancelled and "1 个成功,0 个失败,2 个已取消" in cancelled


def test_the_time_left_waits_for_a_measured_throughput() -> None:
    running = [item("a.mp4", "processing", frames_done=10), item("b.mp4", "pending")]
    early = snap("processing", running, current_video="a.mp4", current_frame=10, current_total_frames=100,
                 eta_seconds=780)
    assert "正在估算" in panels.progress_html(early, "zh") and "780" not in panels.progress_html(early, "zh")
    later = {**early, "current_frame": 60, "eta_seconds": 65}
    assert "约 1 分 5 秒" in panels.progress_html(later, "zh")


def test_a_failure_reason_is_a_short_sentence_in_one_language_with_the_detail_folded() -> None:
    table = panels.items_html(snap("completed_with_errors", [rejected("broken.mp4")]), "en")
    reason = re.search(r'<td class="hg-failed hg-reason">(.*?)</td>', table).group(1)
    assert reason.startswith("The video file cannot be read<details>")
    assert "moov atom not found" in reason and not re.search(r"[\u4e00-\u9fff]", reason)
    zh = panels.items_html(snap("completed_with_errors", [rejected("broken.mp4")]), "zh")
    assert "无法读取视频文件<details><summary>详情</summary>" in zh and "cannot be read" not in zh
    assert reason_text("zh", "no_face", None) == ("视频中没有检测到人脸", "")


def test_english_status_words_are_words_not_identifiers() -> None:
    assert status_word("en", "completed_with_errors") == "Done, some failed"
    assert all("_" not in status_word("en", s) for s in ("queued", "processing", "completed_with_errors"))


def test_the_language_follows_the_browser() -> None:
    assert lang_of("zh-CN,zh;q=0.9,en;q=0.8") == "zh"
    assert lang_of("en-US,en;q=0.9,zh-CN;q=0.8") == "en"
    assert lang_of(None) == "en" and lang_of("fr-FR") == "en"
    table = i18n_translations()
    assert table["zh-CN"]["tab_batch"] == "批量生成" and table["en"]["tab_batch"] == "Batch"
    assert set(table["zh-CN"]) == set(TEXT)


def test_every_english_text_is_free_of_chinese_and_every_chinese_text_of_english_words() -> None:
    neutral = {"HeyGem", "Wav2Lip"}
    for key, words in TEXT.items():
        assert not re.search(r"[\u4e00-\u9fff]", words["en"]), key
        english = set(re.findall(r"[A-Za-z][A-Za-z0-9]+", words["zh"])) - neutral
        assert english <= {"done", "total", "ok", "bad", "cancelled", "ahead", "n", "s"}, (key, english)


def test_a_finished_batch_offers_its_zip_and_manifests_as_buttons_and_a_single_video_does_not() -> None:
    done = snap("completed", [item("王老师.mp4", "done", output_url="/x.mp4")])
    page = panels.results_html(done, "zh", "batch")
    assert f'href="api/batches/{BATCH}/manifest.csv"' in page and "结果清单" in page
    assert f'href="api/batches/{BATCH}/manifest.json"' in page and 'class="hg-btn hg-primary"' in page
    assert 'src="x.mp4#t=0.1"' in page  # the first frame as the poster
    assert "hg-zip" not in panels.results_html(done, "zh", "single")
    assert "manifest" not in panels.results_html({**done, "status": "processing"}, "en")
    single = panels.progress_html(done, "zh", "single")
    assert "生成结束" in single and "批量任务结束" not in single


def test_in_the_localise_tab_the_current_file_is_an_audio() -> None:
    running = snap("processing", [item("fr.wav", "processing")], mode="one_video", current_video="fr.wav",
                   current_total_frames=100)
    assert "当前音频" in panels.progress_html(running, "zh", "localise")


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_queue_lists_what_runs_then_what_waits(lang: str) -> None:
    entries = [panels.QueueEntry("1" * 32, "processing", ["a.mp4", "b.mp4"], 1, 2),
               panels.QueueEntry("2" * 32, "queued", ["<c>.mp4"], 0, 1)]
    page = panels.queue_html(entries, lang, shown="2" * 32)
    assert page.index("1" * 32) < page.index("2" * 32)
    assert 'data-status="processing"' in page and "&lt;c&gt;.mp4" in page
    assert 'class="hg-queue-row hg-shown" data-batch="' + "2" * 32 in page
    assert panels.queue_html([], lang) == ""


def test_the_check_before_queueing_marks_the_file_that_will_fail_in_one_language() -> None:
    error = HeyGemError(ErrorCode.NO_FACE, "empty.mp4: none on 8 sampled frames")
    report = {"estimated_seconds": 75.0, "files": [
        {"name": "王老师.mp4", "kind": "video", "ok": True, "duration_s": 4.0, "fps": 25.0, "face_found": True,
         "faces": 2, "face_share": 0.875, "estimated_seconds": 75.0, "error_code": None, "error": None,
         "warnings": ["2 faces on one frame: the largest is lip-synced"]},
        {"name": "<b>empty</b>.mp4", "kind": "video", "ok": False, "duration_s": 3.0, "fps": 25.0,
         "face_found": False, "faces": 0, "face_share": 0.0, "estimated_seconds": None,
         "error_code": error.code.value, "error": error.message, "warnings": []},
        {"name": "lecture.wav", "kind": "audio", "ok": True, "duration_s": 8.0, "fps": None, "face_found": None,
         "faces": None, "face_share": None, "estimated_seconds": None, "error_code": None, "error": None,
         "warnings": []}]}
    zh, en = panels.preflight_html(report, "zh"), panels.preflight_html(report, "en")
    assert zh.count('data-ok="true"') == 2 and zh.count('data-ok="false"') == 1
    assert "将会失败" in zh and "Will fail" in en and "2 · 88%" in en
    assert "视频中没有检测到人脸" in zh and "No face was found" not in zh
    assert "No face was found" in en and "视频中" not in en
    assert "88% 的抽样帧" in zh and "2 张人脸" in zh and "lip-synced" not in zh
    assert "(2 of 3 files OK)" in en
    assert "<b>empty</b>" not in en and "&lt;b&gt;empty&lt;/b&gt;" in en
    assert panels.preflight_html({"files": []}, "en") == ""


def test_the_queue_view_follows_the_line_and_offers_pause_and_move_to_front(tmp_path) -> None:
    """Three batches: the running one first, then the line's order; a batch moved to the front is
    listed next; pausing swaps the pause button for resume and says so above the list."""
    from types import SimpleNamespace

    from heygem_core.jobs.models import ItemStatus
    from heygem_core.jobs.sqlite_store import SqliteStore
    from tests.jobs.batches import make_batch

    store = SqliteStore(tmp_path / "jobs.db")
    ids = [c * 32 for c in "abc"]
    for n, batch_id in enumerate(ids):
        store.create_batch(make_batch(batch_id, 2, created_at=1000.0 + n))
    store.update_item(ids[0], 0, status=ItemStatus.PROCESSING)
    runtime = SimpleNamespace(store=store, service=SimpleNamespace(
        history=lambda user, limit=50: store.list_batches(limit=limit, owner=user)))
    assert [b.batch_id for b in ui._queued(runtime, None)] == ids
    store.move_to_front(ids[2])
    queued = ui._queued(runtime, None)
    assert [b.batch_id for b in queued] == [ids[0], ids[2], ids[1]]  # the running one stays first
    pause, resume, pick, front = ui._line_updates(runtime, queued, "en")
    assert pause["visible"] and not resume["visible"] and front["interactive"]
    assert [value for _, value in pick["choices"]] == [ids[2], ids[1]]
    store.set_paused(True)
    pause, resume, _, _ = ui._line_updates(runtime, queued, "zh")
    assert resume["visible"] and not pause["visible"]
    page = panels.queue_html(ui._queue_entries(queued), "zh", ids[0], paused=True)
    assert "队列已暂停" in page and page.index(ids[2]) < page.index(ids[1])
    store.close()


def test_a_click_on_the_preview_frame_chooses_that_face_for_that_video(presenter_clip) -> None:
    from types import SimpleNamespace

    clip = str(presenter_clip)
    picker, shown = ui._show_frame([clip], {}, SimpleNamespace(index=0))
    assert picker["visible"] and shown["path"] == clip and shown["frame"].size == (640, 360)
    faces, ringed = ui._choose_face(shown, {}, SimpleNamespace(index=[320, 150]))
    assert faces == {clip: [320.0, 150.0]} and ringed.getpixel((320 + 15, 150)) == ui.MARK
    assert ui.faces_json([clip, "/other.mp4"], faces) == json.dumps([{"point": [320.0, 150.0]}, None])
    assert ui.faces_json(["/other.mp4"], faces) == ""


def test_the_file_radio_is_sent_again_only_when_what_can_be_cancelled_changes() -> None:
    """A tick that would redraw the same choices skips the radio (a redraw under the mouse lost
    clicks); another batch clears the pick; nothing left to cancel hides radio and button."""
    import gradio as gr

    files = [item("a.mp4", "processing", index=0), item("b.mp4", "pending", index=1), item("c.mp4", "done", index=2)]
    radio, button, offered = ui._item_updates(snap("processing", files), "en", None)
    assert radio["choices"] == [("1. a.mp4 · Running", f"{BATCH}:0"), ("2. b.mp4 · Waiting", f"{BATCH}:1")]
    assert radio["visible"] and button["visible"] and radio["value"] is None
    assert ui._item_updates(snap("processing", files), "en", offered) == [gr.skip()] * 3
    files[1] = item("b.mp4", "cancelled", index=1)
    radio, _, later = ui._item_updates(snap("processing", files), "zh", offered)
    assert radio["choices"] == [("1. a.mp4 · 处理中", f"{BATCH}:0")] and "value" not in radio  # the pick stays
    radio, button, _ = ui._item_updates(snap("completed", [item("a.mp4", "done", index=0)]), "en", later)
    assert not radio["visible"] and not button["visible"]
    radio, _, _ = ui._item_updates({**snap("processing", files), "batch_id": "b" * 32}, "en", later)
    assert radio["value"] is None


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_cancelling_one_file_says_what_happened(monkeypatch, lang: str) -> None:
    from types import SimpleNamespace

    from heygem_core.jobs.models import ItemStatus

    said: list[tuple[str, str]] = []
    monkeypatch.setattr(ui.gr, "Info", lambda message, title="": said.append(("info", message)))
    monkeypatch.setattr(ui.gr, "Warning", lambda message, title="": said.append(("warning", message)))
    ends = {1: ItemStatus.CANCELLED, 2: ItemStatus.DONE}
    asked: list[tuple[str, int]] = []

    def cancel_item(batch_id: str, index: int, owner=None):
        asked.append((batch_id, index))
        return SimpleNamespace(name=f"f{index}.mp4", status=ends[index], cancel_requested=False)

    act = ui._cancel_one(lambda: SimpleNamespace(service=SimpleNamespace(cancel_item=cancel_item)))
    request = SimpleNamespace(headers={"accept-language": "zh-CN" if lang == "zh" else "en-US"}, username=None)
    assert act("", request)[0] == ui.gr.skip() and asked == []
    assert said.pop() == ("warning", TEXT["cancel_pick_first"][lang])
    assert act(f"{BATCH}:1", request)[0] == "" and asked[-1] == (BATCH, 1)
    assert said.pop() == ("info", TEXT["cancelled_one_toast"][lang].format(s="f1.mp4"))
    act(f"{BATCH}:2", request)
    assert said.pop() == ("warning", TEXT["cancel_too_late"][lang].format(s="f2.mp4"))


# What Gradio's frontend wrote in the title or aria-label of the studio's elements in a zh-CN browser
# (seen with Debian's chromium: the upload boxes, the audio player, the preview gallery, the history table).
GRADIO_SAID = ["Upload file", "Record audio", "Click to upload or drop files", "Remove this file", "Download All",
               "Close", "Thumbnail 1 of 12", "detailed view of selected image", "Adjust volume",
               "Adjust playback speed to 1.5x", "Skip backwards by 0.12682315 seconds",
               "Skip forward by 0.12682315 seconds", "Reset audio", "undo", "Trim audio to selection",
               "common.upload", "Table actions", "Select column", "Select row", "Copy table data", "Fullscreen",
               "Dataframe"]


def test_gradios_own_english_tooltips_are_rewritten_in_the_pages_language() -> None:
    from heygem_web.ui.assets import head
    from heygem_web.ui.text import GRADIO_ATTRIBUTES, gradio_attribute

    for said in GRADIO_SAID:
        zh = gradio_attribute("zh", said)
        assert re.search(r"[\u4e00-\u9fff]", zh) and not re.search(r"[A-Za-z]{2,}", zh), (said, zh)
    assert gradio_attribute("zh", "Thumbnail 3 of 12") == "第 3 张缩略图,共 12 张"
    assert gradio_attribute("en", "common.upload") == "Upload" and gradio_attribute("en", "Close") == "Close"
    assert gradio_attribute("zh", "presenter_a.mp4") == "presenter_a.mp4"  # anything else is left as it is
    script = head()
    assert all(json.dumps(pattern) in script for pattern, _ in GRADIO_ATTRIBUTES["zh"])


def test_the_history_filters_by_date_status_and_file_name() -> None:
    """Batches made an hour, three days, twenty days and sixty days before a noon: today keeps the
    first, the last 7 days two, the last 30 days three, any date all; the other filters combine."""
    import time

    from heygem_core.jobs.models import BatchStatus, ItemStatus
    from tests.jobs.batches import make_batch, set_status

    day = time.localtime()
    noon = time.mktime((day.tm_year, day.tm_mon, day.tm_mday, 12, 0, 0, 0, 0, -1))
    ages = {"h": 3600, "d3": 3 * 86400, "d20": 20 * 86400, "d60": 60 * 86400}
    batches = [make_batch(key, 2, created_at=noon - age) for key, age in ages.items()]
    for i in batches[1].items:
        set_status(i, ItemStatus.DONE)
    batches[1].items[1].name = "王老师.mp4"
    batches[1].status = BatchStatus.COMPLETED

    def ids(**wanted) -> list[str]:
        return ui.history_rows(batches, "zh", ui.HistoryFilter(**wanted), noon)[1]

    assert ids(period="today") == ["h"] and ids(period="7d") == ["h", "d3"]
    assert ids(period="30d") == ["h", "d3", "d20"] and ids(period="any") == list(ages) == ids()
    assert ids(period="7d", status="completed") == ["d3"] and ids(period="today", status="completed") == []
    assert ids(search="王老师") == ["d3"] and ids(search=" TEACHER_01 ", period="30d") == ["h", "d20"]
    rows, _ = ui.history_rows(batches, "en", ui.HistoryFilter(period="7d"), noon)
    assert rows[1][1:] == ["Done", "2/2", "teacher_00.mp4, 王老师.mp4"]
    assert rows[1][0] == time.strftime("%Y-%m-%d %H:%M", time.localtime(noon - 3 * 86400))
    assert ui.period_start("today", noon) == noon - 12 * 3600 and ui.period_start("any", noon) is None


def test_every_making_tab_has_its_examples_the_languages_tab_one_video_and_every_speech() -> None:
    demo = ui.build_ui(lambda: None, get_settings())
    samples = {b.elem_id: b.samples for b in demo.blocks.values() if b.elem_id in ui.EXAMPLE_IDS.values()}
    ids = ui.EXAMPLE_IDS
    assert samples[ids["localise"]] == [["presenter_a.mp4", "speech.wav, speech_zh.wav"]]  # as the table shows them
    assert samples[ids["batch"]] == [["speech.wav", "presenter_a.mp4, presenter_b.mp4"]]
    assert samples[ids["single"]] == [["speech.wav", "presenter_a.mp4"], ["speech.wav", "presenter_b.mp4"]]


def test_the_live_log_shows_each_line_in_the_page_language_only() -> None:
    """The log file keeps "中文 / English"; the page shows the half of its language, with the
    details (numbers, file names, the error's own sentence) in both halves."""
    import logging

    from heygem_core.realtime_log import RealtimeFormatter

    def line(message: str, level: int = logging.INFO, batch: str | None = "b1", name: str | None = None) -> str:
        record = logging.makeLogRecord({"msg": message, "levelno": level, "levelname": logging.getLevelName(level),
                                        "batch_id": batch, "item_name": name})
        return RealtimeFormatter().format(record)

    error = HeyGemError(ErrorCode.VIDEO_UNREADABLE, "broken.mp4")
    lines = [line(f"失败 {error.message_zh} / failed video_unreadable: {error.message_en}", logging.WARNING,
                  name="broken.mp4"),
             line("帧 50/100(50%) / frame 50/100 (50%)", name="老师.mp4"),
             line("no second language here", batch=None)]
    zh = [log_line("zh", x) for x in lines]
    en = [log_line("en", x) for x in lines]
    assert "| 批次 b1 | broken.mp4 | 警告:失败 无法读取视频文件" in zh[0]
    assert not re.search(r"[A-Za-z]{2,}", zh[0].split("| ")[-1].replace("broken.mp4", ""))
    assert "| batch b1 | broken.mp4 | WARNING: failed video_unreadable: " in en[0]
    assert not re.search(r"[\u4e00-\u9fff]", en[0].split("| ")[-1])
    assert zh[1].endswith("| 批次 b1 | 老师.mp4 | 帧 50/100(50%)") and en[1].endswith("| frame 50/100 (50%)")
    assert en[2].endswith("| - | no second language here") and zh[2].endswith("| no second language here")
