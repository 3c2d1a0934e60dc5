"""The status page and its heartbeat: the page is the session's keepalive (the project's core idea).

``GET /status`` renders the numbers (and, without JavaScript, refreshes itself with a meta-refresh to
``/status?refresh=1``, which is billed like a heartbeat);
``POST /heartbeat`` (the page's fetch every N seconds) returns the very same numbers as JSON. Both are
signs of life: they bill online time up to now and push the session's end further away.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urljoin

from flask import Blueprint, Response, jsonify, redirect, render_template, request, url_for
from sqlalchemy import Connection

from portal import guest, nas_login
from portal.context import PortalContext, portal
from portal.i18n import Wording, wording
from rlm_hotspot.core.heartbeat import TERMINATE_CAUSES, Silence
from rlm_hotspot.core.money import Currency
from rlm_hotspot.services.errors import NotFound
from rlm_hotspot.services.portal import (
    GATE_FAILED_CAUSE,
    HEARTBEAT_TIMEOUT_CAUSE,
    PortalHotspot,
    PortalStatus,
    Signal,
)
from rlm_hotspot.services.sessions import SessionStatus

bp = Blueprint("status", __name__)
A_DAY = 86400
Current = tuple[PortalStatus, Currency, PortalHotspot]  # a guest's session after a sign of life, and its setting


def shown_balance(balance: int) -> int:
    """What a guest is shown as left on the card: never below zero (a session may overshoot zero by up to
    one accounting interval; the card owes nothing, and the guest needs to know only that it is empty)."""
    return max(0, balance)


def status_fields(view: PortalStatus, currency: Currency, hotspot: PortalHotspot, words: Wording) -> dict[str, str]:
    """Every number the page shows, as text in the guest's language (the page and the JSON share it)."""
    status = view.status
    fields = {
        "balance": words.money(shown_balance(status.balance), currency),
        "buys_time": words.gettext("more than a day")
        if status.seconds_remaining >= A_DAY
        else words.duration(status.seconds_remaining),
        "buys_traffic": words.gettext("not charged")
        if status.bytes_remaining is None
        else words.data_size(status.bytes_remaining),
        "online": words.duration(status.online_seconds),
        "download": words.data_size(status.download_bytes),
        "upload": words.data_size(status.upload_bytes),
        "deadline": words.local_time(status.deadline, hotspot.timezone)
        if status.deadline
        else words.gettext("no end date"),
        "ended": "" if status.open else ended_reason(status, hotspot, words),
    }
    return fields


def hidden_keeps(hotspot: PortalHotspot, words: Wording) -> str:
    """How long a page in the background keeps its session (the heartbeat rule's hidden grace)."""
    return words.duration(max(hotspot.heartbeat_timeout, hotspot.hidden_grace))


def ended_reason(status: SessionStatus, hotspot: PortalHotspot, words: Wording) -> str:
    """Why the session ended, and what the guest can do about it: from the cause stored with it (the
    worker's, the portal's, or the NAS's Acct-Terminate-Cause) and what is left on the card."""
    cause = status.terminate_cause
    if cause == "Card-Blocked":
        return words.gettext("Your session has ended: this card has been blocked. Please ask at the desk.")
    if cause == "Balance-Exhausted" or status.balance <= 0:
        return words.gettext(
            "Your session has ended: the money on this card is used up. To go on, log in with a new card."
        )
    if cause == "Card-Expired" or (cause == "Session-Timeout" and _deadline_reached(status)):
        return words.gettext("Your session has ended: this card has expired. To go on, log in with a new card.")
    if cause == HEARTBEAT_TIMEOUT_CAUSE:
        return words.gettext(
            "Your session has ended: this page was closed or stopped for more than %(seconds)d seconds. "
            "Billing stopped when access was cut. You can log in again with the same card.",
            seconds=hotspot.heartbeat_timeout,
        )
    if cause == TERMINATE_CAUSES[Silence.HIDDEN]:
        return words.gettext(
            "Your session has ended: this page stayed in the background for more than %(duration)s. "
            "Billing stopped when access was cut.",
            duration=hidden_keeps(hotspot, words),
        )
    if cause == TERMINATE_CAUSES[Silence.CLOSED]:
        return words.gettext("Your session has ended: this page was closed. Billing stopped when access was cut.")
    if cause == "User-Request":
        return words.gettext("You have logged out. Billing has stopped.")
    if cause == "Session-Timeout":
        return words.gettext(
            "Your session has reached its time limit. Billing has stopped. You can log in again with the same card."
        )
    if cause == "Idle-Timeout":
        return words.gettext(
            "Your session has ended after a while without any traffic. Billing has stopped. "
            "You can log in again with the same card."
        )
    if cause == GATE_FAILED_CAUSE:
        return words.gettext("We could not open Internet access. Nothing was charged: please log in again.")
    return words.gettext(
        "The hotspot has ended your session (your device may have left the Wi-Fi network). Billing has stopped. "
        "You can log in again with the same card."
    )


def _deadline_reached(status: SessionStatus) -> bool:
    """The NAS's time limit was the card's deadline (Session-Timeout is cut to it at login): the session
    ran up to it (within a minute of accounting's rounding)."""
    if status.deadline is None:
        return False
    ended = status.started_at + timedelta(seconds=status.online_seconds + 60)
    return status.deadline <= ended


def heartbeat_reply(current: Current, interval: int, words: Wording) -> dict[str, Any]:
    """What the page's heartbeat gets back: the page's numbers as text, and as numbers for programs."""
    view, currency, hotspot = current
    status = view.status
    return {
        "open": status.open,
        "fields": status_fields(view, currency, hotspot, words),
        "balance_minor": status.balance,
        "seconds_remaining": status.seconds_remaining,
        "bytes_remaining": status.bytes_remaining,
        "next_heartbeat_s": interval,
    }


def ended_reply(words: Wording) -> dict[str, Any]:
    """The heartbeat of a session that is gone (the page then reloads and shows why)."""
    return {"open": False, "fields": {"ended": words.gettext("Your session has ended. Billing has stopped.")}}


def page_is_open(
    context: PortalContext,
    db: Connection,
    token: str,
    gate_ip: str | None,
    *,
    heartbeat: bool,
    money_moved_at: datetime | None = None,
) -> Current | None:
    """The status page shows a sign of life (`heartbeat`: its JavaScript's or its no-JS refresh, else a page
    load): the session after it, or None when the session is gone. `money_moved_at`: the guest's last
    top-up, which another worker may have made."""
    try:
        view = context.mark_sign_of_life(
            db, token, Signal.PAGE, gate_ip, may_post_later=heartbeat, seen_since=money_moved_at
        )
    except NotFound:
        return None
    return view, context.currency(db), context.hotspot(db)


def _current(*, heartbeat: bool) -> Current | None:
    context = portal()
    with context.without_transaction() as db:
        token = guest.current_token(db)
        if token is None:
            return None
        return page_is_open(
            context, db, token, guest.gate_address(), heartbeat=heartbeat, money_moved_at=guest.money_moved_at()
        )


@bp.get("/status")
def status_page() -> Any:
    # The page's own refresh without JavaScript (`?refresh=1`) is that guest's heartbeat, and is billed
    # like one; a page the guest opens (after login or a top-up) writes at once and shows the fresh balance.
    waited = nas_login.waiting_for_start()
    if waited is not None:
        return nas_login.confirming_page(waited)
    current = _current(heartbeat=request.args.get("refresh") == "1")
    if current is None:
        guest.forget_login()
        return redirect(url_for("auth.login_form"), 303)
    view, currency, hotspot = current
    return render_template(
        "status.html",
        view=view,
        fields=status_fields(view, currency, hotspot, wording()),
        hotspot=hotspot,
        interval=portal().heartbeat_interval(hotspot),
        hidden_keeps=hidden_keeps(hotspot, wording()),
        destination=guest.destination(),
        status_url=urljoin(portal().public_url(hotspot), url_for("status.status_page")),
    )


@bp.post("/heartbeat")
def heartbeat() -> Response:
    current = _current(heartbeat=True)
    if current is None:
        return jsonify(ended_reply(wording()))
    return jsonify(heartbeat_reply(current, portal().heartbeat_interval(current[2]), wording()))
