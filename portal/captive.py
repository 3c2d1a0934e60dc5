"""RFC 8908 Captive Portal API: what the guest's operating system asks (DHCP option 114 / RFC 8910
points it here). The OS sends no cookie, so the client is known by its address.

``seconds-remaining`` is when the session ends unless something changes: what the balance buys, and —
where heartbeats are required — when the worker will cut it under the heartbeat rule (docs/billing.md),
with what the page last said: the timeout after the last sign of life, a page in the background its
hidden grace, a closed page a few seconds; so the OS can tell the guest to reopen the page in time.
Whether a poll counts as a heartbeat is the hotspot's rule (``grace``: yes, and then a closed page's
"closed" no longer stands; ``on``: no).

The firewall also sends here every page a guest not yet let through asks for (port 80 redirected,
deploy/nftables): such a request names another host, and is redirected to the portal's own URL.
"""

from __future__ import annotations

import json
from datetime import datetime
from urllib.parse import urlencode, urljoin, urlsplit

from flask import Blueprint, Response, redirect, request, url_for
from flask.typing import ResponseReturnValue

from portal import guest
from portal.context import portal
from portal.security import client_address
from rlm_hotspot.services import portal as portal_service
from rlm_hotspot.services.errors import NotFound
from rlm_hotspot.services.portal import PortalHotspot, PortalStatus, Signal

bp = Blueprint("captive", __name__)
CAPTIVE_JSON = "application/captive+json"


@bp.before_app_request
def send_other_hosts_to_the_portal() -> ResponseReturnValue | None:
    """A request for another site (the firewall redirected it here) goes to the portal's URL, which
    remembers the page the guest wanted (``?url=``) so the status page can link back to it."""
    context = portal()
    base = context.public_url(context.hotspot())
    if request.host.lower() == urlsplit(base).netloc.lower():
        return None
    wanted = request.url
    if request.method in ("GET", "HEAD") and len(wanted) <= guest.MAX_URL_LENGTH:
        base = f"{base}?{urlencode({'url': wanted})}"
    return redirect(base, 302)


def captive_state(
    hotspot: PortalHotspot, view: PortalStatus | None, cut_at: datetime | None, now_ts: float
) -> dict[str, object]:
    context = portal()
    base = context.public_url(hotspot)
    state: dict[str, object] = {"captive": True, "user-portal-url": base}
    if context.settings.venue_info_url:
        state["venue-info-url"] = context.settings.venue_info_url
    if view is None or not view.status.open:
        return state
    remaining = view.status.seconds_remaining
    if cut_at is not None:
        remaining = min(remaining, max(0, int(cut_at.timestamp() - now_ts)))
    state.update(
        {
            "captive": False,
            "user-portal-url": urljoin(base, url_for("status.status_page")),
            "seconds-remaining": remaining,
        }
    )
    if view.status.bytes_remaining is not None:
        state["bytes-remaining"] = view.status.bytes_remaining
    state["can-extend-session"] = True
    return state


@bp.get("/api/captive")
def captive_api() -> Response:
    context = portal()
    now = context.clock()
    view, cut_at = None, None
    ip = client_address()
    with context.without_transaction() as db:
        hotspot = context.hotspot(db)
        token = guest.current_token(db) or portal_service.live_token_for_client(db, hotspot, ip)
        if token is not None:
            try:
                view = context.mark_sign_of_life(db, token, Signal.CAPTIVE_API, guest.gate_address() or ip)
                cut_at = portal_service.heartbeat_cut_at(db, hotspot, view)
            except NotFound:
                view = None
    body = json.dumps(captive_state(hotspot, view, cut_at, now.timestamp()))
    return Response(body, content_type=CAPTIVE_JSON, headers={"Cache-Control": "private, no-store"})
