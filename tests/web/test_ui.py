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
