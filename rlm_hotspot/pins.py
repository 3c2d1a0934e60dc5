"""PINs at rest: never in a form a database dump reveals.

Two modes, chosen per card batch:

* ``encrypted`` — AES-256-GCM under a key kept in a file outside the database, the card number as
  associated data (a ciphertext copied onto another card does not decrypt). CHAP and CoovaChilli/MikroTik
  UAM need the cleartext PIN at authorize time, so this is the default.
* ``hashed`` — HMAC-SHA256 keyed with the same key file, for PAP-only installs that never want a
  reversible PIN. The key makes an offline guess from a dump impossible without the file as well.

The key file holds one ``<id>:<64 hex digits>`` line per key; the highest id encrypts, every key
decrypts, so a new key can be added first and the old cards re-sealed under it afterwards
(`hotspotctl pins`, docs/operations.md).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
# The first byte of a stored secret says how the rest was made.
AES_GCM = b"\x01"
HMAC_SHA256 = b"\x02"


class PinKeyError(RuntimeError):
    """The key file is missing, unreadable or malformed."""


@dataclass(frozen=True)
class PinVault:
    """Encrypts, reveals and verifies card PINs with the keys of one key file."""

    keys: dict[int, bytes]

    @classmethod
    def from_file(cls, path: Path) -> PinVault:
        try:
            text = path.read_text()
        except FileNotFoundError as exc:
            raise PinKeyError(f"PIN key file {path} not found (create it with `hotspotctl db init`)") from exc
        except PermissionError as exc:
            raise PinKeyError(f"PIN key file {path} is not readable by this user") from exc
        keys: dict[int, bytes] = {}
        for lineno, raw_line in enumerate(text.splitlines(), 1):
            line = raw_line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                key_id_text, hex_key = line.split(":", 1)
                key = bytes.fromhex(hex_key)
                key_id = int(key_id_text)
            except ValueError as exc:
                raise PinKeyError(f"{path}:{lineno}: expected '<id>:<64 hex digits>'") from exc
            if len(key) != 32 or not 0 < key_id < 32768:
                raise PinKeyError(f"{path}:{lineno}: a key is 32 bytes with an id in 1..32767")
            keys[key_id] = key
        if not keys:
            raise PinKeyError(f"PIN key file {path} holds no key")
        return cls(keys)

    @property
    def current_key_id(self) -> int:
        return max(self.keys)

    def seal_many(self, numbers: list[str], pins: list[str], mode: str) -> Iterator[bytes]:
        """The stored secrets of new cards, under the current key (`current_key_id`)."""
        key = self.keys[self.current_key_id]
        if mode == "hashed":
            for number, pin in zip(numbers, pins, strict=True):
                yield HMAC_SHA256 + _mac(key, number, pin)
            return
        cipher = AESGCM(key)
        nonces = os.urandom(NONCE_BYTES * len(numbers))
        for i, (number, pin) in enumerate(zip(numbers, pins, strict=True)):
            nonce = nonces[i * NONCE_BYTES : (i + 1) * NONCE_BYTES]
            yield AES_GCM + nonce + cipher.encrypt(nonce, pin.encode(), number.encode())

    def reveal(self, number: str, key_id: int, secret: bytes) -> str | None:
        """The cleartext PIN of an encrypted card, or None for a hashed one.

        Raises PinKeyError when the secret does not open with the file's key `key_id`: the key file is not
        the one the card was made with (a restored database beside a fresh key file), or the secret was
        tampered with. Either way no guest's PIN is wrong, and nothing must count as a failed login.
        """
        if secret[:1] != AES_GCM:
            return None
        nonce, sealed = secret[1 : 1 + NONCE_BYTES], secret[1 + NONCE_BYTES :]
        try:
            return AESGCM(self._key(key_id)).decrypt(nonce, sealed, number.encode()).decode()
        except (InvalidTag, ValueError):
            raise PinKeyError(
                f"the secret of {number} does not open with PIN key {key_id}: is this the key file it was made "
                "with? (`hotspotctl pins status`)"
            ) from None

    def verify(self, number: str, pin: str, key_id: int, secret: bytes) -> bool:
        """Constant-time check of a PIN typed by a guest, in either mode."""
        if secret[:1] == HMAC_SHA256:
            return hmac.compare_digest(_mac(self._key(key_id), number, pin), secret[1:])
        stored = self.reveal(number, key_id, secret)
        return stored is not None and hmac.compare_digest(stored.encode(), pin.encode())

    def _key(self, key_id: int) -> bytes:
        try:
            return self.keys[key_id]
        except KeyError:
            raise PinKeyError(f"PIN key {key_id} is not in the key file (was a key removed?)") from None


def _mac(key: bytes, number: str, pin: str) -> bytes:
    return hmac.new(key, f"{number}:{pin}".encode(), hashlib.sha256).digest()


KEY_FILE_MODE = stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP  # 0640: root writes, the hotspot group reads


def create_key_file(path: Path) -> bool:
    """Create a key file with one fresh key (mode 0640); False when it already exists."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    with os.fdopen(fd, "w") as out:
        out.write("# rlm_hotspot PIN keys: keep outside the database and its backups; never edit a line\n")
        out.write(f"1:{secrets.token_hex(32)}\n")
    return True


def add_key(path: Path) -> int:
    """Append a fresh key with the next id (it becomes the current key); returns its id.

    Appending keeps the file's owner and mode, and a reader sees the file with or without the new line.
    """
    key_id = PinVault.from_file(path).current_key_id + 1
    if key_id >= 32768:
        raise PinKeyError(f"PIN key file {path} has used every key id (1..32767)")
    with path.open("a") as out:
        out.write(f"{key_id}:{secrets.token_hex(32)}\n")
    return key_id


def remove_key(path: Path, key_id: int) -> None:
    """Rewrite the key file without key `key_id`, atomically, with the same owner and mode.

    The caller checks first that nothing is sealed under it any more (`hotspotctl pins retire-key`).
    """
    vault = PinVault.from_file(path)
    if key_id not in vault.keys:
        raise PinKeyError(f"PIN key {key_id} is not in {path}")
    if len(vault.keys) == 1:
        raise PinKeyError(f"PIN key {key_id} is the only key in {path}")
    kept = [line for line in path.read_text().splitlines(keepends=True) if line.split(":", 1)[0].strip() != str(key_id)]
    status = path.stat()
    replacement = path.with_name(f".{path.name}.new")
    fd = os.open(replacement, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IMODE(status.st_mode))
    try:
        with os.fdopen(fd, "w") as out:
            out.writelines(kept)
            out.flush()
            os.fsync(out.fileno())
        if os.geteuid() == 0:
            os.chown(replacement, status.st_uid, status.st_gid)
        os.replace(replacement, path)
    except BaseException:
        replacement.unlink(missing_ok=True)
        raise


# -- CHAP (RFC 2865 5.3, RFC 1994): a NAS proves the PIN it got with MD5(ident + PIN + challenge) ---------
def chap_response(ident: int, secret: str, challenge: bytes) -> bytes:
    """The 16-octet response a NAS computes from the secret the guest typed."""
    return hashlib.md5(bytes([ident]) + secret.encode() + challenge, usedforsecurity=False).digest()


@dataclass(frozen=True)
class ChapAnswer:
    """What a CHAP Access-Request proves: CHAP-Password's ident and response, and the challenge
    (CHAP-Challenge, else the Request Authenticator)."""

    ident: int
    response: bytes
    challenge: bytes

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(chap_response(self.ident, secret, self.challenge), self.response)
