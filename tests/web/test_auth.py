"""HEYGEM_AUTH: no access without credentials; each user sees and downloads only their own
batches, through the API and through the UI."""

from __future__ import annotations

import shutil
import time

import httpx
import make_samples
import pytest

from tests.server_util import WAIT_S, Server

ALICE, BOB = ("alice", "pw-a"), ("bob", "pw-b")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("auth-workspace"), HEYGEM_AUTH="alice:pw-a,bob:pw-b").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def alice_batch(server, presenter_clip, speech_en, samples_dir) -> str:
    speech = samples_dir / "auth_speech.wav"
    make_samples.run_ffmpeg(["-y", "-i", str(speech_en), "-t", "1.5", str(speech)])
    response = httpx.post(f"{server.url}/start_batch", auth=ALICE, timeout=60,
                          files=[("audio", ("a.wav", speech.read_bytes())),
                                 ("videos", ("alice_clip.mp4", presenter_clip.read_bytes()))])
    assert response.status_code == 201, response.text
    batch_id = response.json()["batch_id"]
    deadline = time.monotonic() + WAIT_S
    while httpx.get(f"{server.url}/api/progress/{batch_id}", auth=ALICE, timeout=10).json()["status"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    return batch_id


@pytest.mark.parametrize("path", ["/", "/api/progress", "/api/batches", "/docs"])
def test_no_access_without_credentials(server, path):
    assert httpx.get(server.url + path, timeout=10).status_code == 401
    assert httpx.get(server.url + path, auth=("alice", "wrong"), timeout=10).status_code == 401
    assert httpx.get(server.url + path, auth=ALICE, timeout=10).status_code == 200
    assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200


def test_users_see_only_their_own_batches(server, alice_batch):
    routes = [f"/api/progress/{alice_batch}", f"/api/batches/{alice_batch}/download",
              f"/api/batches/{alice_batch}/items/0/output", f"/api/batches/{alice_batch}/manifest.csv",
              f"/api/batches/{alice_batch}/manifest.json"]
    for route in routes:
        assert httpx.get(server.url + route, auth=ALICE, timeout=30).status_code == 200, route
        assert httpx.get(server.url + route, auth=BOB, timeout=30).status_code == 404, route
    assert httpx.post(f"{server.url}/api/batches/{alice_batch}/cancel", auth=BOB, timeout=10).status_code == 404
    mine = [b["batch_id"] for b in httpx.get(f"{server.url}/api/batches", auth=ALICE, timeout=10).json()]
    theirs = [b["batch_id"] for b in httpx.get(f"{server.url}/api/batches", auth=BOB, timeout=10).json()]
    assert alice_batch in mine and alice_batch not in theirs
    assert httpx.get(f"{server.url}/api/progress", auth=BOB, timeout=10).json()["batch_id"] is None


def test_bearer_token(server, alice_batch):
    token = httpx.post(f"{server.url}/api/token", auth=ALICE, timeout=10).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{server.url}/api/progress/{alice_batch}", headers=headers, timeout=10).status_code == 200
    forged = {"Authorization": f"Bearer bob.{token.split('.', 1)[1]}"}
    assert httpx.get(f"{server.url}/api/progress/{alice_batch}", headers=forged, timeout=10).status_code == 401


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_ui_shows_each_user_only_their_batches(server, alice_batch):
    from playwright.sync_api import sync_playwright

    from tests.web.test_browser import CHROME_ARGS, CHROMIUM

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS)
        for user, sees in ((ALICE, True), (BOB, False)):
            context = browser.new_context(http_credentials={"username": user[0], "password": user[1]})
            page = context.new_page()
            page.goto(server.url + "/")
            page.wait_for_selector("#hg-status", timeout=30_000)
            page.wait_for_timeout(2500)  # a few timer ticks
            assert ("alice_clip.mp4" in page.inner_text("#hg-table")) is sees
            assert (page.query_selector("#hg-results video") is not None) is sees
            context.close()
        browser.close()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_the_live_log_fold_shows_each_user_only_their_batches(server, alice_batch):
    from playwright.sync_api import sync_playwright

    from tests.web.test_browser import CHROME_ARGS, CHROMIUM

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS)
        logs = {}
        for user in (ALICE, BOB):
            context = browser.new_context(http_credentials={"username": user[0], "password": user[1]},
                                          locale="zh-CN")
            page = context.new_page()
            page.goto(server.url + "/")
            page.wait_for_selector("#hg-status", timeout=30_000)
            page.click("text=运行实时日志")  # open the fold
            page.wait_for_selector("#hg-log textarea", timeout=30_000)
            page.wait_for_timeout(2500)  # a few timer ticks
            logs[user[0]] = page.eval_on_selector("#hg-log textarea", "e => e.value")
            context.close()
        browser.close()
    assert alice_batch in logs["alice"] and "alice_clip.mp4" in logs["alice"]
    assert alice_batch not in logs["bob"] and "alice_clip" not in logs["bob"]


def test_a_revoked_token_is_refused_and_a_new_one_works(server, alice_batch):
    old = httpx.post(f"{server.url}/api/token", auth=ALICE, timeout=10).json()
    assert old["expires_in"] == 12 * 3600
    headers = {"Authorization": f"Bearer {old['token']}"}
    bob = {"Authorization": f"Bearer {httpx.post(f'{server.url}/api/token', auth=BOB, timeout=10).json()['token']}"}
    assert httpx.post(f"{server.url}/api/token/revoke", headers=headers, timeout=10).json()["revoked"]
    assert httpx.get(f"{server.url}/api/progress/{alice_batch}", headers=headers, timeout=10).status_code == 401
    assert httpx.get(f"{server.url}/api/batches", headers=bob, timeout=10).status_code == 200
    new = httpx.post(f"{server.url}/api/token", auth=ALICE, timeout=10).json()["token"]
    fresh = {"Authorization": f"Bearer {new}"}
    assert httpx.get(f"{server.url}/api/progress/{alice_batch}", headers=fresh, timeout=10).status_code == 200
    assert (server.workspace / "auth.json").stat().st_mode & 0o077 == 0
