"""Staff accounts of the web console: roles, passwords (scrypt), sign-in with throttling, console sessions.

A role grants its own rights and those of the roles below it: a cashier sells, helps guests and sees the
place; a manager also reads the reports and adjusts balances; an admin also configures and manages staff.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from rlm_hotspot import totp
from rlm_hotspot.db import audit as audit_q
from rlm_hotspot.db import staff as q
from rlm_hotspot.db.catalog import DuplicateError
from rlm_hotspot.db.staff import StaffRecord
from rlm_hotspot.pins import PinKeyError, PinVault
from rlm_hotspot.services.errors import NotFound, ServiceError

ROLES = ("cashier", "manager", "admin")
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
# scrypt: 2**15 x 8 x 128 bytes = 32 MiB of memory per hash, ~0.1 s: costly for a guesser with a GPU.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
SCRYPT_MAXMEM = 64 * 1024 * 1024
# Sign-in throttling: this many failures within the window refuse further tries for that account name,
# and four times as many for one client address (many names guessed from one place).
FAILED_LOGINS_PER_NAME = 5
FAILED_LOGINS_PER_CLIENT = 20
FAILED_LOGIN_WINDOW = timedelta(minutes=15)


class SignInRefused(ServiceError):
    """Wrong name or password, or too many tries; the message never says which account exists."""


def role_allows(role: str, needed: str) -> bool:
    """Whether `role` has the rights of `needed` (roles are ordered cashier < manager < admin)."""
    return ROLES.index(role) >= ROLES.index(needed)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        computed = _scrypt(password, bytes.fromhex(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(computed, bytes.fromhex(digest))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=SCRYPT_MAXMEM, dklen=32)


# Verified when the name is unknown, so a refusal takes as long whether the account exists or not.
_NOBODY = hash_password(secrets.token_urlsafe(16))


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ServiceError(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ServiceError("the password is too long")


def add_staff(db: Session, name: str, role: str, password: str, now: datetime) -> int:
    if role not in ROLES:
        raise ServiceError(f"the role is one of {', '.join(ROLES)}")
    name = name.strip()
    if not name or len(name) > 64 or not all(ch.isascii() and (ch.isalnum() or ch in "._@-") for ch in name):
        raise ServiceError("a staff name is 1-64 letters, digits, '.', '_', '@' or '-'")
    check_password_rules(password)
    try:
        return q.insert_staff(db, name=name, role=role, password_hash=hash_password(password), now=now)
    except DuplicateError as exc:
        raise ServiceError(str(exc)) from None


def list_staff(db: Session) -> list[StaffRecord]:
    return q.staff_list(db)


def get_staff(db: Session, name: str) -> StaffRecord:
    found = q.staff_by_name(db, name)
    if found is None:
        raise NotFound(f"no staff account {name!r}")
    return found


def change_staff(
    db: Session,
    name: str,
    now: datetime,
    *,
    role: str | None = None,
    active: bool | None = None,
    password: str | None = None,
) -> StaffRecord:
    """Change an account; a disabled account or a new password ends the account's console sessions."""
    staff = get_staff(db, name)
    values: dict[str, object] = {}
    if role is not None:
        if role not in ROLES:
            raise ServiceError(f"the role is one of {', '.join(ROLES)}")
        values["role"] = role
    if active is not None:
        values["active"] = active
    if password is not None:
        check_password_rules(password)
        values["password_hash"] = hash_password(password)
    if values:
        q.update_staff(db, staff.id, now=now, **values)
    if active is False or password is not None:
        q.end_sessions_of(db, staff.id, now)
    return get_staff(db, name)


@dataclass(frozen=True)
class SignedIn:
    staff: StaffRecord
    token: str  # goes into the browser's cookie only; the database keeps its hash


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def sign_in(db: Session, vault: PinVault, name: str, password: str, code: str, client: str, now: datetime) -> SignedIn:
    """Check name, password and (when set up) the TOTP code, throttled per name and per client, and open a
    console session.

    The caller records the outcome in the audit trail (a failure too: the throttle counts those rows).
    """
    name = name.strip()[:64]
    by_name, by_client = audit_q.failed_logins(db, name=name, client=client, since=now - FAILED_LOGIN_WINDOW)
    if by_name >= FAILED_LOGINS_PER_NAME or by_client >= FAILED_LOGINS_PER_CLIENT:
        raise SignInRefused("too many failed sign-ins: wait 15 minutes or ask an admin")
    staff = q.staff_by_name(db, name)
    if len(password) > MAX_PASSWORD_LENGTH:
        password = ""
    if not verify_password(password, staff.password_hash if staff else _NOBODY) or staff is None or not staff.active:
        raise SignInRefused("wrong name or password")
    if staff.has_totp:
        step = totp.matching_step(_totp_secret(vault, staff), code, int(now.timestamp()))
        if step is None or not q.use_totp_step(db, staff.id, step):
            raise SignInRefused("wrong or used code")
    token = secrets.token_urlsafe(32)
    q.insert_session(db, token_hash=token_hash(token), staff_id=staff.id, client=client, now=now)
    return SignedIn(staff, token)


def totp_seal_name(staff_name: str) -> str:
    """The associated data of a sealed TOTP secret: a secret copied onto another account does not open."""
    return f"staff:{staff_name}"


def _totp_secret(vault: PinVault, staff: StaffRecord) -> str:
    try:
        secret = vault.reveal(totp_seal_name(staff.name), staff.totp_key_id or 0, staff.totp_secret or b"")
    except PinKeyError:
        secret = None
    if secret is None:
        raise SignInRefused("the second factor cannot be read: ask an admin to set it up again")
    return secret


def new_totp_secret() -> str:
    return totp.new_secret(secrets.token_bytes(totp.SECRET_BYTES))


def enable_totp(db: Session, vault: PinVault, staff: StaffRecord, secret: str, code: str, now: datetime) -> None:
    """Turn the second factor on once the authenticator app shows a code for `secret` (proof it is set up)."""
    step = totp.matching_step(secret, code, int(now.timestamp()))
    if step is None:
        raise ServiceError("that code does not match: check the app's clock and the secret, and try again")
    sealed = next(vault.seal_many([totp_seal_name(staff.name)], [secret], "encrypted"))
    q.set_totp(db, staff.id, sealed, vault.current_key_id)
    q.use_totp_step(db, staff.id, step)


def clear_totp(db: Session, name: str) -> None:
    """Turn the second factor off (a lost phone): the account signs in with its password alone."""
    q.set_totp(db, get_staff(db, name).id, None, None)


def current_staff(db: Session, token: str, now: datetime, idle_timeout_s: int) -> StaffRecord | None:
    """The account behind a console session that is still open (and keeps it open), else None."""
    return q.touch_session(db, token_hash(token), now, idle_timeout_s)


def sign_out(db: Session, token: str, now: datetime) -> None:
    q.end_session(db, token_hash(token), now)
