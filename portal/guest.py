"""What the portal remembers about one guest, in the signed session cookie: the session token (or, in
RADIUS mode, the verified card number), the address the gate was opened for, and where they wanted to go."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import request, session

from portal.context import portal
from rlm_hotspot.db.engine import Executor
from rlm_hotspot.services import portal as portal_service

MAX_URL_LENGTH = 2048
# Where the NAS (or an operator's link) puts the page the guest first asked for.
DESTINATION_PARAMETERS = ("url", "userurl", "link-orig")


def safe_destination(text: str | None) -> str | None:
    """An absolute http(s) URL fit to show as a link, or None (never a javascript: or relative URL)."""
    if not text or len(text) > MAX_URL_LENGTH or any(c.isspace() or ord(c) < 32 for c in text):
        return None
    parts = urlsplit(text)
    return text if parts.scheme in ("http", "https") and parts.netloc else None


def remember_destination() -> None:
    for name in DESTINATION_PARAMETERS:
        url = safe_destination(request.args.get(name))
        if url:
            session["url"] = url
            return


def destination() -> str | None:
    return safe_destination(session.get("url"))


def remember_login(*, token: str | None, card_number: str | None, ip: str) -> None:
    session.pop("token", None)
    session.pop("card", None)
    if token:
        session["token"] = token
    if card_number:
        session["card"] = card_number
    session["ip"] = ip


def forget_login() -> None:
    for key in ("token", "card", "ip"):
        session.pop(key, None)


def gate_address() -> str | None:
    """The address the gate was opened for at login (the guest's address may change later)."""
    ip = session.get("ip")
    return ip if isinstance(ip, str) else None


def current_token(db: Executor) -> str | None:
    """This guest's session: the portal's own (standalone), or the one the NAS opened for their card."""
    token = session.get("token")
    if isinstance(token, str):
        return token
    card = session.get("card")
    if isinstance(card, str):
        context = portal()
        return portal_service.live_token_for_card(db, context.hotspot(db), card)
    return None
