"""Login, logout, top-up, language and terms: the pages a guest acts on (every form is a POST with CSRF).

The login branches on the hotspot's mode. Standalone: the portal opens the billing session itself, then
the firewall gate — or, when openNDS sent the guest here as its FAS, for the client openNDS named, whose
browser then takes openNDS the token that lets it through. RADIUS: the portal checks the card (so
refusals come in the guest's language and wrong PINs count) and hands the credentials to the NAS, which
asks FreeRADIUS.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urljoin

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext
from werkzeug.wrappers import Response

from portal import forms, guest, nas_login
from portal.context import portal
from portal.i18n import LANGUAGE_COOKIE, LANGUAGES, money, refusal_message
from portal.metrics import count_login
from portal.security import client_address, same_site_path
from portal.status import page_is_open, shown_balance
from rlm_hotspot.core.clients import canonical_mac, client_identity
from rlm_hotspot.core.decisions import Refusal
from rlm_hotspot.nas.gates import FasRequest, FasRequestError, GateError, OpenNdsGate
from rlm_hotspot.services import portal as portal_service
from rlm_hotspot.services import sessions
from rlm_hotspot.services.errors import CardRefused, NotFound, ServiceError

bp = Blueprint("auth", __name__)
log = logging.getLogger(__name__)
FAS_PARAMETERS = ("fas", "authaction", "tok", "redir")  # openNDS FAS level 1, level 0


def _login_page(*, error: str | None = None, card: str = "", status: int = 200) -> tuple[str, int]:
    context = portal()
    with context.unit_of_work() as db:
        hotspot = context.hotspot(db)
    if hotspot.mode != "standalone":
        nas_login.allow_nas_target()
        card = card or nas_login.prefilled_card()
    return render_template("login.html", error=error, card=card[: forms.MAX_CARD_TEXT], hotspot=hotspot), status


def _reconnect_message() -> str:
    return gettext("This login link is not valid here. Please open any web page again to get a fresh one.")


@bp.get("/")
def login_form() -> Any:
    guest.remember_destination()
    if nas_login.is_nas_redirect():
        instead = nas_login.arrive()
        if instead is not None:
            return instead
    try:
        _remember_fas_request()
    except FasRequestError as exc:
        log.warning("openNDS FAS request refused: %s", exc)
        return _login_page(error=_reconnect_message(), status=400)
    context = portal()
    with context.unit_of_work() as db:
        token = guest.current_token(db)
        still_open = token is not None and sessions.session_status(db, context.tariffs, token, context.clock()).open
    if still_open:
        return redirect(url_for("status.status_page"), 303)
    return _login_page()


@bp.post("/login")
def login() -> Any:
    card_text = request.form.get("card", "")
    try:
        credentials = forms.card_and_pin(request.form)
    except forms.FormError as exc:
        return _login_page(error=str(exc), card=card_text)
    context = portal()
    try:
        fas = _fas_request()
    except FasRequestError as exc:
        log.warning("openNDS FAS request refused at login: %s", exc)
        return _login_page(error=_reconnect_message(), card=card_text, status=400)
    ip, mac = (fas.client_ip, fas.client_mac) if fas else (client_address(), None)
    now = context.clock()
    refusal: Refusal | None = None
    taken_over: str | None = None
    with context.unit_of_work() as db:  # committed also after a refusal: wrong PINs must count
        hotspot = context.hotspot(db)
        if hotspot.terms_of_use and request.form.get("terms") != "yes":
            return _login_page(error=gettext("Please accept the terms of use."), card=card_text)
        try:
            taken_over = portal_service.take_over(
                db,
                context.vault,
                context.tariffs,
                context.policy,
                hotspot=hotspot,
                card_text=credentials.card_number,
                pin=credentials.pin,
                client_ip=ip,
                client=client_identity(mac, ip) if hotspot.mode == "standalone" else nas_login.client_identity_for(ip),
                now=now,
            )
            # None: this address holds no open session of this card (else: this device's own session, from
            # a browser without its cookie, e.g. after the captive-portal window closed)
            if taken_over is None and hotspot.mode == "standalone":
                status = sessions.open_portal_session(
                    db,
                    context.vault,
                    context.tariffs,
                    context.policy,
                    card_text=credentials.card_number,
                    pin=credentials.pin,
                    hotspot_id=hotspot.id,
                    client_ip=ip,
                    client_mac=canonical_mac(mac),
                    now=now,
                )
            elif taken_over is None:
                portal_service.check_credentials(
                    db,
                    context.vault,
                    context.tariffs,
                    context.policy,
                    hotspot=hotspot,
                    card_text=credentials.card_number,
                    pin=credentials.pin,
                    client=nas_login.client_identity_for(ip),
                    now=now,
                )
        except CardRefused as refused:
            refusal = refused.refusal
    count_login(refusal)
    if refusal is not None:
        return _login_page(error=refusal_message(refusal, context.policy.lockout_window_s), card=card_text)
    if taken_over is not None:
        session.pop("fas", None)
        guest.remember_login(token=taken_over, card_number=None, ip=ip)
        return redirect(url_for("status.status_page"), 303)
    if hotspot.mode != "standalone":
        handed_over = nas_login.hand_over(credentials.card_number, credentials.pin, ip, context.public_url(hotspot))
        if handed_over is None:
            message = gettext("Please connect to the Wi-Fi network first, then open any web page.")
            return _login_page(error=message, card=card_text, status=400)
        return handed_over
    try:
        if fas is not None:
            target = _opennds_auth_url(fas, context.public_url(hotspot))
        else:
            context.gate.open(ip, mac, status.seconds_remaining)
            target = url_for("status.status_page")
    except GateError as exc:
        log.error("gate did not open for %s: %s", ip, exc)
        with context.unit_of_work() as db:
            portal_service.abandon_session(db, status.token)
        return _login_page(error=gettext("We could not open Internet access. Nothing was charged: please try again."))
    session.pop("fas", None)
    guest.remember_login(token=status.token, card_number=None, ip=ip)
    return redirect(target, 303)


def _remember_fas_request() -> None:
    """openNDS sent the guest here as its FAS: check its parameters now and keep them for the login POST
    (the client's address and MAC come from them, not from the connection)."""
    gate = _opennds_gate()
    if gate is None or not any(name in request.args for name in FAS_PARAMETERS):
        return
    session.pop("fas", None)
    query = {name: request.args[name] for name in FAS_PARAMETERS if name in request.args}
    if sum(len(value) for value in query.values()) > nas_login.NAS_PARAMETERS_MAX:
        raise FasRequestError("FAS parameters longer than the portal keeps")
    fas = gate.fas_request(query, seen_from=client_address())
    session["fas"] = query
    if guest.safe_destination(fas.origin_url):
        session["url"] = fas.origin_url


def _fas_request() -> FasRequest | None:
    """The openNDS client this guest's login is for, checked again (None: not sent here by openNDS)."""
    gate, query = _opennds_gate(), session.get("fas")
    if gate is None or not isinstance(query, dict):
        return None
    return gate.fas_request(query, seen_from=client_address())


def _opennds_gate() -> OpenNdsGate | None:
    gate = portal().gate
    return gate if isinstance(gate, OpenNdsGate) else None


def _opennds_auth_url(fas: FasRequest, public_url: str) -> str:
    """openNDS's /opennds_auth/ with the client's token; it then sends the browser to the status page,
    whose heartbeats keep the session going (if the browser never gets there, the worker ends it)."""
    gate = _opennds_gate()
    assert gate is not None
    return gate.auth_redirect(fas, urljoin(public_url, url_for("status.status_page")))


@bp.post("/logout")
def logout() -> Any:
    context = portal()
    with context.unit_of_work() as db:
        token = guest.current_token(db)
        hotspot = context.hotspot(db)
        if token is None:
            status = None
        elif hotspot.mode == "standalone":
            status = sessions.logout(db, context.tariffs, token, context.clock())
        else:  # the NAS holds the session: the worker sends it a Disconnect-Request (docs/portal.md)
            status = sessions.session_status(db, context.tariffs, token, context.clock())
            portal_service.end_at_nas(db, token, context.clock())
        currency = context.currency(db)
    if hotspot.mode == "standalone":
        context.close_gate(guest.gate_address())
    guest.forget_login()
    if status is not None:
        left = money(shown_balance(status.balance), currency)
        flash(gettext("You have logged out. Left on your card: %(balance)s.", balance=left))
    return redirect(url_for("auth.login_form"), 303)


@bp.get("/topup")
def top_up_form() -> Any:
    """The top-up form on a page of its own: the status page refreshes itself without JavaScript, which
    would wipe a card half typed. Opening it is a sign of life (the guest has a whole heartbeat timeout
    to type); with JavaScript its heartbeat runs as on the status page."""
    context = portal()
    with context.without_transaction() as db:
        token = guest.current_token(db)
        current = None if token is None else page_is_open(context, db, token, guest.gate_address(), heartbeat=False)
    if current is None or not current[0].status.open:
        return redirect(url_for("status.status_page"), 303)
    view, _currency, hotspot = current
    return render_template(
        "topup.html", view=view, hotspot=hotspot, interval=context.heartbeat_interval(hotspot), card=""
    )


@bp.post("/topup")
def top_up() -> Any:
    try:
        credentials = forms.card_and_pin(request.form)
    except forms.FormError as exc:
        flash(str(exc), "error")
        return redirect(url_for("auth.top_up_form"), 303)
    context = portal()
    ip, now = client_address(), context.clock()
    with context.unit_of_work() as db:  # committed also after a refusal: wrong PINs must count
        token = guest.current_token(db)
        if token is None:
            return redirect(url_for("auth.login_form"), 303)
        hotspot = context.hotspot(db)
        try:
            added = portal_service.top_up(
                db,
                context.vault,
                context.policy,
                hotspot=hotspot,
                token=token,
                source_text=credentials.card_number,
                pin=credentials.pin,
                client_ip=ip,
                now=now,
            )
        except CardRefused as refused:
            flash(refusal_message(refused.refusal, context.policy.lockout_window_s), "error")
            return redirect(url_for("auth.top_up_form"), 303)
        except (NotFound, ServiceError):
            flash(gettext("This card cannot top itself up. Please use a second card."), "error")
            return redirect(url_for("auth.top_up_form"), 303)
        status = sessions.session_status(db, context.tariffs, token, now)
        currency = context.currency(db)
    guest.remember_money_moved(now)
    if status.open and hotspot.mode == "standalone":
        _extend_gate(status.seconds_remaining)
    # The balance is the status page's own (billed to the moment it is shown): one figure, never two
    # computed at different moments.
    flash(gettext("Added %(amount)s to your card.", amount=money(added.amount, currency)))
    return redirect(url_for("status.status_page"), 303)


def _extend_gate(seconds: int) -> None:
    """The gate was opened for what the old balance bought; open it for what the new one buys."""
    ip = guest.gate_address()
    if ip is None or seconds <= 0:
        return
    try:
        portal().gate.open(ip, None, seconds)
    except GateError as exc:
        log.error("gate could not be extended for %s: %s", ip, exc)


@bp.get("/lang/<code>")
def choose_language(code: str) -> Response:
    if code not in LANGUAGES:
        abort(404)
    response = redirect(same_site_path(request.args.get("next")), 303)
    response.set_cookie(
        LANGUAGE_COOKIE,
        code,
        max_age=365 * 86400,
        httponly=True,
        samesite="Lax",
        secure=portal().settings.cookie_secure,
    )
    return response


@bp.get("/terms")
def terms() -> Any:
    context = portal()
    with context.unit_of_work() as db:
        hotspot = context.hotspot(db)
    if not hotspot.terms_of_use:
        abort(404)
    return render_template("terms.html", hotspot=hotspot)
