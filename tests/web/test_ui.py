"""The Blocks app without a browser: what build_ui sets up besides the components."""

from __future__ import annotations

from heygem_core.config import get_settings
from heygem_web.ui import studio as ui


def test_idle_gradio_queue_polls_every_50_ms_not_every_1_ms() -> None:
    demo = ui.build_ui(lambda: None, get_settings())  # the runtime is only asked for at event time
    assert demo._queue.sleep_when_free == ui.QUEUE_POLL_S
    assert demo._queue.progress_update_sleep_when_free >= ui.QUEUE_POLL_S


def test_a_finished_batch_links_its_zip_and_its_manifest() -> None:
    from heygem_web.ui.panels import results_html

    snap = {"batch_id": "a" * 32, "status": "completed",
            "items": [{"status": "done", "output_url": "/x.mp4", "name": "王老师.mp4"}]}
    page = results_html(snap, "zh")
    assert f'href="api/batches/{"a" * 32}/manifest.csv"' in page and "结果清单" in page
    assert "manifest" not in results_html({**snap, "status": "processing"}, "en")


def test_the_check_before_queueing_marks_the_file_that_will_fail() -> None:
    from heygem_web.ui.panels import preflight_html

    report = {"estimated_seconds": 75.0, "files": [
        {"name": "王老师.mp4", "ok": True, "duration_s": 4.0, "fps": 25.0, "face_found": True, "faces": 1,
         "face_share": 0.875, "estimated_seconds": 75.0, "error": None, "warnings": []},
        {"name": "<b>empty</b>.mp4", "ok": False, "duration_s": 3.0, "fps": 25.0, "face_found": False, "faces": 0,
         "face_share": 0.0, "estimated_seconds": None, "error": "视频中没有检测到人脸 / No face was found",
         "warnings": []}]}
    zh, en = preflight_html(report, "中文"), preflight_html(report, "English")
    assert zh.count('data-ok="true"') == 1 and zh.count('data-ok="false"') == 1
    assert "将会失败" in zh and "will fail" in en and "1 · 88%" in en
    assert "about 1 min 15 s" in en and "(1 of 2 files ok)" in en
    assert "<b>empty</b>" not in en and "&lt;b&gt;empty&lt;/b&gt;" in en
    assert preflight_html({"files": []}, "English") == ""
