"""Passwords in HEYGEM_AUTH, plain or hashed: `pbkdf2_sha256$<iterations>$<salt>$<hash>` (base64),
made with `python -m heygem_web.passwords`. Checked in constant time either way."""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import os
import sys

SCHEME = "pbkdf2_sha256"
ITERATIONS = 600_000  # OWASP's 2023 figure for PBKDF2-HMAC-SHA256
SALT_BYTES = 16


def hash_password(password: str, iterations: int = ITERATIONS) -> str:
    """A salted PBKDF2-SHA256 hash of `password`, for HEYGEM_AUTH."""
    salt = os.urandom(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"{SCHEME}${iterations}${_b64(salt)}${_b64(digest)}"


def verify_password(stored: str, given: str) -> bool:
    """Whether `given` is the password `stored` (a hash made by `hash_password`, or plain)."""
    if not is_hashed(stored):
        return hmac.compare_digest(stored.encode(), given.encode())
    _, iterations, salt, digest = stored.split("$")
    actual = hashlib.pbkdf2_hmac("sha256", given.encode(), _unb64(salt), int(iterations))
    return hmac.compare_digest(actual, _unb64(digest))


def is_hashed(stored: str) -> bool:
    parts = stored.split("$")
    return len(parts) == 4 and parts[0] == SCHEME and parts[1].isdigit()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def main() -> int:
    """Print the hash of a password given as the argument or typed at the prompt."""
    password = sys.argv[1] if len(sys.argv) > 1 else getpass.getpass("password: ")
    sys.stdout.write(hash_password(password) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
