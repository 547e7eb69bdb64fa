"""Login without a server: tokens signed with a server secret, expiring, revocable; hashed
passwords; a client that keeps failing is slowed down and logged."""

from __future__ import annotations

import asyncio
import base64
import logging
import stat
import time
from pathlib import Path

import pytest

from heygem_web.auth import FREE_FAILURES, Authenticator, AuthMiddleware
from heygem_web.passwords import hash_password, verify_password
from heygem_web.tokens import RELOAD_S, TokenKeeper

USERS = {"alice": "pw-a", "bob": "pw-b"}


def keeper(tmp_path: Path, ttl_s: float = 3600.0, secret: str = "") -> TokenKeeper:
    return TokenKeeper(tmp_path / "auth.json", ttl_s, secret)


def test_tokens_are_signed_with_a_random_secret_kept_private(tmp_path: Path) -> None:
    first = keeper(tmp_path)
    token = first.issue("alice", USERS["alice"])
    assert first.check(token, USERS) == "alice"
    assert stat.S_IMODE((tmp_path / "auth.json").stat().st_mode) == 0o600
    assert "pw-a" not in token and keeper(tmp_path).check(token, USERS) == "alice"  # same workspace
    elsewhere = keeper(tmp_path / "other")  # the same users and passwords, another secret
    assert elsewhere.check(token, USERS) is None
    assert keeper(tmp_path, secret="given").check(token, USERS) is None  # HEYGEM_AUTH_SECRET wins
    assert first.check(token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), USERS) is None


def test_tokens_expire(tmp_path: Path) -> None:
    short = keeper(tmp_path, ttl_s=1.0)
    token = short.issue("alice", USERS["alice"])
    assert short.check(token, USERS) == "alice"
    time.sleep(2.1)
    assert short.check(token, USERS) is None


def test_revoking_ends_a_users_tokens_everywhere(tmp_path: Path) -> None:
    one, two = keeper(tmp_path), keeper(tmp_path)  # two app instances on one workspace
    alice, bob = one.issue("alice", USERS["alice"]), one.issue("bob", USERS["bob"])
    one.revoke("alice")
    assert one.check(alice, USERS) is None and one.check(bob, USERS) == "bob"
    time.sleep(RELOAD_S + 0.1)
    assert two.check(alice, USERS) is None
    assert two.check(one.issue("alice", USERS["alice"]), USERS) == "alice"  # a new token works


def test_a_new_user_keeps_tokens_valid_and_a_new_password_ends_them(tmp_path: Path) -> None:
    tokens = keeper(tmp_path)
    alice = tokens.issue("alice", USERS["alice"])
    assert tokens.check(alice, {**USERS, "carol": "pw-c"}) == "alice"
    assert tokens.check(alice, {**USERS, "alice": "changed"}) is None
    assert tokens.check(alice, {"bob": "pw-b"}) is None


def test_hashed_passwords(tmp_path: Path) -> None:
    stored = hash_password("秘密 pw", iterations=1000)
    assert stored.startswith("pbkdf2_sha256$1000$") and "秘密" not in stored
    assert verify_password(stored, "秘密 pw") and not verify_password(stored, "秘密 pw ")
    assert verify_password("plain", "plain") and not verify_password("plain", "plai")
    auth = Authenticator({"alice": stored}, keeper(tmp_path))
    assert auth.user_for(basic("alice", "秘密 pw")) == "alice"
    assert auth.user_for(basic("alice", "wrong")) is None


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def call(middleware: AuthMiddleware, authorization: str, client: str = "10.0.0.7") -> int:
    sent: list[dict] = []

    async def app(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    async def send(message: dict) -> None:
        sent.append(message)

    middleware.app = app
    scope = {"type": "http", "method": "GET", "path": "/api/batches", "client": (client, 5000),
             "headers": [(b"authorization", authorization.encode())], "query_string": b""}
    asyncio.run(middleware(scope, receive, send))
    return sent[0]["status"]


def test_failed_logins_are_slowed_per_client_and_logged(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    middleware = AuthMiddleware(None, Authenticator(USERS, keeper(tmp_path)))
    with caplog.at_level(logging.WARNING, logger="heygem_web.auth"):
        codes = [call(middleware, basic("alice", f"guess{n}")) for n in range(300)]
    assert codes[:FREE_FAILURES] == [401] * FREE_FAILURES and set(codes[FREE_FAILURES:]) == {429}
    assert call(middleware, basic("alice", "pw-a")) == 429  # this client waits, even with the password
    assert call(middleware, basic("alice", "pw-a"), client="10.0.0.8") == 200  # another client does not
    failures = [r for r in caplog.records if "failed login from 10.0.0.7" in r.getMessage()]
    assert len(failures) == FREE_FAILURES and "pw-a" not in caplog.text and "guess" not in caplog.text
