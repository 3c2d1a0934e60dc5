"""RADIUS mode's login, the portal's side of a UAM handoff: the NAS's redirect, the way to the NAS and back.

A guest's login is one form navigation: the login page posts to the portal, which sends the browser to
the NAS's login endpoint, which sends it back here with the result. A browser checks that whole chain
against the login page's CSP `form-action`, so that page names the NAS's origin (:func:`allow_nas_target`)
— the one verified from its redirect, nothing wider.

A NAS redirect is used for one handoff only: its challenge may expire at the NAS. When a handoff fails at
the NAS (CoovaChilli 1.8 `res=failed`, MikroTik's login page with an error, or CoovaChilli 1.9 dropping
the connection, which the portal only learns when the guest comes back — a new page, or the back button
— and no session was opened), the guest is told and sent to the NAS for a fresh redirect, which brings
them back to the login page with the card number filled in. Such a
failure is not a wrong PIN: the portal had checked the PIN before the handoff, and counts nothing for it
(a PIN RADIUS refused, RADIUS counted itself). When RADIUS did refuse the login (the card was blocked or
taken on another device meanwhile, ...), the NAS passes its Reply-Message on (CoovaChilli `reply=`,
MikroTik `error=`): the guest reads that reason, in their language when it is one of ours.

The NAS may send the guest back on success before its Accounting-Start has opened the session here (the
Access-Accept left it pending): the status page then waits for it a few seconds
(:func:`waiting_for_start`), then says plainly that the login is not confirmed.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

from flask import flash, redirect, render_template, request, session, url_for
from flask_babel import gettext

from portal import guest, uam
from portal.context import portal
from portal.i18n import refusal_message
from portal.security import allow_form_target
from rlm_hotspot.core.clients import client_identity
from rlm_hotspot.core.decisions import SERVICE_UNAVAILABLE, Refusal
from rlm_hotspot.services import portal as portal_service
from rlm_hotspot.services.errors import NotFound
from rlm_hotspot.services.uam import nas_uam

log = logging.getLogger(__name__)
NAS_PARAMETERS_MAX = 2048  # bytes of the NAS's redirect kept for the login POST
NAS_REDIRECT = "nas"  # session: the NAS's redirect, exactly as requested (CoovaChilli signs the URL)
HANDED_OFF = "handoff"  # session: the card number of a handoff whose result has not come back yet
RESTART = "nas_restart"  # session: where the NAS gives this guest a fresh redirect
PREFILL = "prefill_card"  # session: the card number to show again after a failed handoff
ACCEPTED = "nas_accepted"  # session: when the NAS let the guest in (its Accounting-Start may be on its way)
START_WAIT_S = 10  # how long the status page waits for that Start before it says the login is unconfirmed
NAS_MESSAGE_MAX = 120  # characters of a NAS's reason shown to the guest


def is_nas_redirect() -> bool:
    return "res" in request.args or "link-login-only" in request.args


def arrive() -> Any | None:
    """The NAS sent the guest here (first time, or with a login's result): keep a fresh redirect, or act
    on the result. Returns the response to send instead of the login page, if any."""
    url = request.host_url.rstrip("/") + request.environ.get("RAW_URI", request.full_path)
    if len(url) > NAS_PARAMETERS_MAX:
        log.warning("NAS redirect not used: longer than %d bytes", NAS_PARAMETERS_MAX)
        return None
    ctx = _verified(url)
    if ctx is None:
        return None
    card = session.pop(HANDED_OFF, None)
    session.pop(NAS_REDIRECT, None)
    if uam.login_outcome(ctx).accepted:
        _note_accepted()
        return redirect(url_for("status.status_page"), 303)
    handoff_failed = isinstance(card, str) and _no_session_for(card)  # e.g. CoovaChilli 1.9 hung up
    if ctx.result == "notyet" and not handoff_failed:
        session[NAS_REDIRECT] = url
        session[RESTART] = ctx.restart_url
        return None
    if ctx.result not in ("notyet", "failed"):  # logoff: the NAS ended the session; the status page says so
        return redirect(url_for("status.status_page"), 303) if guest.NAS_SESSION in session else None
    log.info("a login at NAS %s failed (%s): restarting from a fresh redirect", ctx.nas_id, ctx.message)
    _tell_failed(card, ctx.message)
    return redirect(ctx.restart_url, 303)


def _tell_failed(card: object, nas_message: str | None = None) -> None:
    reason = nas_reason(nas_message)
    if reason:
        flash(gettext("The hotspot refused the login: %(reason)s Nothing was charged.", reason=reason), "error")
    else:
        flash(
            gettext(
                "The hotspot did not complete your login (its login link may have expired). "
                "Nothing was charged. Please type your PIN again."
            ),
            "error",
        )
    if isinstance(card, str):
        session[PREFILL] = card


def nas_reason(message: str | None) -> str | None:
    """What the NAS said about a refused login, fit to show: one of our own refusals (RADIUS's
    Reply-Message) in the guest's language, else the NAS's text on one line, cut short (the page escapes
    it). None when it said nothing."""
    text = " ".join("".join(c if c.isprintable() else " " for c in message or "").split())
    if not text:
        return None
    ours = next((refusal for refusal in Refusal if refusal.message == text), None)
    if ours is not None:
        return refusal_message(ours, portal().policy.lockout_window_s)
    if text == SERVICE_UNAVAILABLE:
        return gettext("The service is temporarily unavailable. Please try again in a few minutes.")
    return text if len(text) <= NAS_MESSAGE_MAX else text[: NAS_MESSAGE_MAX - 1] + "…"


def _note_accepted() -> None:
    session[ACCEPTED] = portal().clock().timestamp()


def waiting_for_start() -> float | None:
    """Seconds since the NAS let this guest in, while its Accounting-Start has not opened the card's
    session here (radiusd's Access-Accept left it pending, or nothing is found yet); None: no login waits.

    CoovaChilli says so with res=success; MikroTik sends the browser to `dst` (the status page) only after
    an Access-Accept, so a handoff that arrives there counts as accepted."""
    if session.pop(HANDED_OFF, None) is not None:
        _note_accepted()
    accepted_at, card = session.get(ACCEPTED), session.get("card")
    if not isinstance(accepted_at, int | float) or isinstance(accepted_at, bool) or not isinstance(card, str):
        return None
    context = portal()
    with context.unit_of_work() as db:
        if portal_service.nas_has_started(db, context.hotspot(db), card):
            session.pop(ACCEPTED)
            return None
    return max(0.0, context.clock().timestamp() - accepted_at)


def confirming_page(waited: float) -> Any:
    """The status page while the NAS's Start is awaited: it looks again every second (a meta refresh, with
    or without JavaScript), then says plainly that the login is not confirmed and what to do."""
    restart = session.get(RESTART)
    return render_template(
        "confirming.html",
        hotspot=portal().hotspot(),
        waiting=waited < START_WAIT_S,
        log_in_again=restart if isinstance(restart, str) else url_for("auth.login_form"),
    )


def _no_session_for(card: str) -> bool:
    context = portal()
    with context.unit_of_work() as db:
        return portal_service.live_token_for_card(db, context.hotspot(db), card) is None


def prefilled_card() -> str:
    card = session.pop(PREFILL, None)
    return card if isinstance(card, str) else ""


def allow_nas_target() -> None:
    """Let the login page's form navigation reach the NAS that sent the guest here (and only that NAS)."""
    ctx = nas_context()
    if ctx is not None:
        target = urlsplit(ctx.login_url)
        allow_form_target(f"{target.scheme}://{target.netloc}")


def client_identity_for(ip: str) -> str | None:
    """The lockout's name for this guest, as RADIUS will name them: the MAC the NAS's redirect gave (the
    Calling-Station-Id it will send), else the address. A MikroTik redirect is not signed: a guest can
    change its `mac`, which escapes this pre-check's count for the client but not RADIUS's own, nor the
    card's (docs/billing.md, "Lockout")."""
    ctx = nas_context()
    if ctx is None:
        return client_identity(None, ip)
    return client_identity(ctx.client_mac, ctx.client_ip or ip)


def nas_context() -> uam.NasContext | None:
    """The NAS redirect kept for this guest's next handoff, verified again (None: there is none)."""
    url = session.get(NAS_REDIRECT)
    return _verified(url) if isinstance(url, str) else None


def _verified(url: str) -> uam.NasContext | None:
    """A NAS redirect checked with that NAS's own UAM settings (`hotspotctl nas uam`).

    CoovaChilli names itself in `nasid`; a MikroTik login page passes `identity=$(identity)`. A redirect
    from a NAS the database does not know, or one that fails its checks, is not used.
    """
    params = dict(parse_qsl(urlsplit(url).query))
    name = params.get("nasid") or params.get("identity")
    if not name:
        log.warning("NAS redirect not used: it names no NAS (nasid / identity)")
        return None
    context = portal()
    try:
        with context.unit_of_work() as db:
            nas = nas_uam(db, name)
        if "link-login-only" in params:
            return uam.parse_mikrotik_login(params, nas.uam_login_url or "")
        return uam.parse_chilli_redirect(url, nas.uam_secret)
    except (NotFound, uam.UamError) as exc:
        log.warning("NAS redirect not used: %s", exc)
        return None


def hand_over(card_number: str, pin: str, ip: str, public_url: str) -> Any:
    """Send the guest's browser to the NAS's login endpoint with the credentials (CHAP where the PINs
    are stored encrypted; hashed PINs can only be checked with PAP). The redirect is spent by it."""
    ctx = nas_context()
    if ctx is None:
        restart = session.get(RESTART)
        if isinstance(restart, str):  # the form again after a handoff (back button): a fresh redirect first
            session.pop(HANDED_OFF, None)
            _tell_failed(card_number)
            return redirect(restart, 303)
        return None
    session.pop(NAS_REDIRECT, None)
    session.pop(ACCEPTED, None)
    session[HANDED_OFF] = card_number
    guest.remember_login(token=None, card_number=card_number, ip=ctx.client_ip or ip)
    chap = portal().settings.core.pin_mode == "encrypted"
    status_url = urljoin(public_url, url_for("status.status_page"))
    handoff = uam.handoff(ctx, card_number, pin, status_url=status_url, chap=chap)
    target = urlsplit(handoff.url)
    allow_form_target(f"{target.scheme}://{target.netloc}")
    if handoff.method == "GET":
        return redirect(handoff.url, 303)
    return render_template("handoff.html", handoff=handoff, hotspot=None)
