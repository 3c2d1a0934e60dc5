"""The status page and its heartbeat: the page is the session's keepalive (the project's core idea).

``GET /status`` renders the numbers (and, without JavaScript, refreshes itself with a meta-refresh);
``POST /heartbeat`` (the page's fetch every N seconds) returns the very same numbers as JSON. Both are
signs of life: they bill online time up to now and push the session's end further away.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

from flask import Blueprint, Response, jsonify, redirect, render_template, url_for
from flask_babel import gettext

from portal import guest
from portal.context import portal
from portal.i18n import data_size, duration, local_time, money
from rlm_hotspot.core.money import Currency
from rlm_hotspot.services.errors import NotFound
from rlm_hotspot.services.portal import HEARTBEAT_TIMEOUT_CAUSE, PortalHotspot, PortalStatus, Signal

bp = Blueprint("status", __name__)
A_DAY = 86400


def status_fields(view: PortalStatus, currency: Currency, hotspot: PortalHotspot) -> dict[str, str]:
    """Every number the page shows, as text in the guest's language (the page and the JSON share it)."""
    status = view.status
    fields = {
        "balance": money(status.balance, currency),
        "buys_time": gettext("more than a day")
        if status.seconds_remaining >= A_DAY
        else duration(status.seconds_remaining),
        "buys_traffic": gettext("not charged") if status.bytes_remaining is None else data_size(status.bytes_remaining),
        "online": duration(status.online_seconds),
        "download": data_size(status.download_bytes),
        "upload": data_size(status.upload_bytes),
        "deadline": local_time(status.deadline, hotspot.timezone) if status.deadline else gettext("no end date"),
        "ended": "" if status.open else ended_reason(status.terminate_cause, hotspot),
    }
    return fields


def ended_reason(cause: str | None, hotspot: PortalHotspot) -> str:
    if cause == HEARTBEAT_TIMEOUT_CAUSE:
        return gettext(
            "Your session has ended: the status page was closed for more than %(seconds)d seconds. "
            "Billing stopped when the page was closed.",
            seconds=hotspot.heartbeat_timeout,
        )
    if cause == "User-Request":
        return gettext("You have logged out. Billing has stopped.")
    return gettext("Your session has ended. Billing has stopped.")


def _current(signal: Signal) -> tuple[PortalStatus, Currency, PortalHotspot] | None:
    context = portal()
    with context.without_transaction() as db:
        token = guest.current_token(db)
        if token is None:
            return None
        try:
            view = context.sign_of_life(db, token, signal, guest.gate_address())
        except NotFound:
            return None
        return view, context.currency(db), context.hotspot(db)


@bp.get("/status")
def status_page() -> Any:
    current = _current(Signal.PAGE)
    if current is None:
        guest.forget_login()
        return redirect(url_for("auth.login_form"), 303)
    view, currency, hotspot = current
    return render_template(
        "status.html",
        view=view,
        fields=status_fields(view, currency, hotspot),
        hotspot=hotspot,
        interval=portal().heartbeat_interval(hotspot),
        destination=guest.destination(),
        status_url=urljoin(portal().public_url(hotspot), url_for("status.status_page")),
    )


@bp.post("/heartbeat")
def heartbeat() -> Response:
    current = _current(Signal.PAGE)
    if current is None:
        return jsonify(open=False, fields={"ended": gettext("Your session has ended. Billing has stopped.")})
    view, currency, hotspot = current
    return jsonify(
        open=view.status.open,
        fields=status_fields(view, currency, hotspot),
        balance_minor=view.status.balance,
        seconds_remaining=view.status.seconds_remaining,
        bytes_remaining=view.status.bytes_remaining,
        next_heartbeat_s=portal().heartbeat_interval(hotspot),
    )
