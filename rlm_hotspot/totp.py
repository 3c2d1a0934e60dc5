"""Time-based one-time passwords (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits), as authenticator apps
make them. No clock and no randomness of its own: the caller passes the POSIX time and the random bytes
of a new secret (it sits beside pins.py, the other keyed-hash code, not in the stdlib-listed core)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from urllib.parse import quote

STEP_SECONDS = 30
DIGITS = 6
SECRET_BYTES = 20


def new_secret(random_bytes: bytes) -> str:
    """A base32 secret (what a person types into an authenticator app) from SECRET_BYTES random bytes."""
    if len(random_bytes) != SECRET_BYTES:
        raise ValueError(f"a TOTP secret takes {SECRET_BYTES} random bytes")
    return base64.b32encode(random_bytes).decode().rstrip("=")


def code_at(secret: str, step: int) -> str:
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(number % 10**DIGITS).zfill(DIGITS)


def matching_step(secret: str, code: str, posix_seconds: int, window: int = 1) -> int | None:
    """The time step (now, or `window` steps either side: clocks drift) whose code this is, else None."""
    code = "".join(code.split())
    if len(code) != DIGITS or not code.isdigit():
        return None
    now_step = posix_seconds // STEP_SECONDS
    for step in range(now_step - window, now_step + window + 1):
        if hmac.compare_digest(code_at(secret, step), code):
            return step
    return None


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The otpauth:// link an authenticator app reads (typed or from a QR code)."""
    label = quote(f"{issuer}:{account}")
    return f"otpauth://totp/{label}?secret={secret}&issuer={quote(issuer)}&digits={DIGITS}&period={STEP_SECONDS}"
