"""Bearer tokens: signed (itsdangerous) with a random server secret, never with a password; they
expire, and a user can revoke all of theirs at once.

The secret and each user's token generation live in `<workspace>/auth.json` (mode 0600), shared
by every app instance on the workspace; HEYGEM_AUTH_SECRET replaces the stored secret. A token
names its user, the user's generation (revoking bumps it) and a keyed fingerprint of the user's
password entry (changing a password ends that user's tokens); nothing in it helps guess a password."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
from pathlib import Path

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

logger = logging.getLogger(__name__)

STATE_FILE = "auth.json"
SALT = "heygem-bearer-token"
RELOAD_S = 1.0  # how often the state file is looked at for another instance's changes


class TokenKeeper:
    """Issues and checks the bearer tokens of one workspace."""

    def __init__(self, path: Path | None, ttl_s: float, secret: str = "") -> None:
        self.path, self.ttl_s = path, ttl_s
        self._lock = threading.Lock()
        self._state = self._load_or_create()
        self._secret = secret or self._state["secret"]  # HEYGEM_AUTH_SECRET wins; never written
        self._checked = time.monotonic()
        self._signer = URLSafeTimedSerializer(self._secret, salt=SALT)

    def issue(self, user: str, password_entry: str) -> str:
        """A token for `user`, valid for ttl_s."""
        payload = {"u": user, "g": self._generation(user), "p": self._fingerprint(password_entry)}
        return self._signer.dumps(payload)

    def check(self, token: str, password_of: dict[str, str]) -> str | None:
        """The user a valid, unexpired, unrevoked token names, else None."""
        try:
            payload = self._signer.loads(token, max_age=self.ttl_s)
        except (SignatureExpired, BadSignature):
            return None
        user = payload.get("u") if isinstance(payload, dict) else None
        entry = password_of.get(user) if isinstance(user, str) else None
        if entry is None or payload.get("g") != self._generation(user):
            return None
        return user if hmac.compare_digest(str(payload.get("p")), self._fingerprint(entry)) else None

    def revoke(self, user: str) -> None:
        """End every token of `user` issued so far."""
        with self._lock:
            self._reload()
            generations = self._state.setdefault("generations", {})
            generations[user] = generations.get(user, 0) + 1
            self._save()
        logger.info("revoked the tokens of %s", user)

    def _generation(self, user: str) -> int:
        if time.monotonic() - self._checked > RELOAD_S:
            with self._lock:
                self._reload()
        return int(self._state.get("generations", {}).get(user, 0))

    def _fingerprint(self, password_entry: str) -> str:
        key = self._secret.encode()
        return hmac.new(key, password_entry.encode(), hashlib.sha256).hexdigest()[:16]

    def _load_or_create(self) -> dict:
        """The stored state; a new random secret (saved) the first time."""
        state = self._read()
        if state is None:
            state = self._state = {"secret": secrets.token_hex(32), "generations": {}}
            self._save()
        return state

    def _reload(self) -> None:
        self._checked = time.monotonic()
        stored = self._read()
        if stored is not None:
            self._state["generations"] = stored.get("generations", {})

    def _read(self) -> dict | None:
        if self.path is None or not self.path.exists():
            return None
        return json.loads(self.path.read_text(encoding="utf-8"))

    def _save(self) -> None:
        """Write the state file readable by its owner only, atomically."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self._state, f)
        os.replace(tmp, self.path)
