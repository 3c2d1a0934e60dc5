"""What the status page says about itself: hidden, visible again, closed (Page Lifecycle).

A phone freezes a page it sends to the background, so its heartbeats stop although the guest is still
there; a page that is closed just stops. The page's script tells the portal before it goes quiet —
``navigator.sendBeacon`` on ``visibilitychange`` and ``pagehide``, which still leaves a page being hidden or
unloaded — with ``POST /page`` and a form body ``state`` = hidden | visible | closed (a beacon cannot set a
header, so the CSRF token travels as the form's ``csrf_token``). Each is a sign of life, rated and posted
like a heartbeat at once, and the page's word is marked for the heartbeat rule
(``rlm_hotspot.core.heartbeat``): a hidden page keeps its session for the hotspot's ``hidden_grace``, a
closed one ends it a few seconds later. The reply is the heartbeat's JSON (the script uses it when the
page comes back; a beacon ignores it).
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, jsonify, request

from portal import guest
from portal.context import portal
from portal.i18n import wording
from portal.status import ended_reply, heartbeat_reply, page_is_open
from rlm_hotspot.core.heartbeat import PageState
from rlm_hotspot.services.portal import mark_page_state

bp = Blueprint("lifecycle", __name__)
STATES: dict[str, PageState | None] = {"hidden": PageState.HIDDEN, "closed": PageState.CLOSED, "visible": None}


@bp.post("/page")
def page_state() -> Response:
    state = request.form.get("state", "")
    if state not in STATES:
        abort(400, description="state must be hidden, visible or closed")
    context = portal()
    with context.without_transaction() as db:
        token = guest.current_token(db)
        if token is None:
            return jsonify(ended_reply(wording()))
        current = page_is_open(
            context, db, token, guest.gate_address(), heartbeat=False, money_moved_at=guest.money_moved_at()
        )
        if current is None or not current[0].status.open:
            return jsonify(ended_reply(wording()))
        mark_page_state(db, token, STATES[state], context.clock())
    return jsonify(heartbeat_reply(current, context.heartbeat_interval(current[2]), wording()))
