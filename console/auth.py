"""Signing in and out, the staff member behind each request, the rights each page needs, the audit trail.

Every page but the sign-in page needs a console session; a page for a higher role answers 403 (and the
refusal is written to the audit trail too).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TypeVar

from flask import Blueprint, abort, flash, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from console.context import console
from console.i18n import LANGUAGE_COOKIE, LANGUAGES
from console.security import client_address
from rlm_hotspot import totp
from rlm_hotspot.db.staff import StaffRecord
from rlm_hotspot.services import audit, staff
from rlm_hotspot.services.errors import ServiceError
from rlm_hotspot.services.staff import SignInRefused

bp = Blueprint("auth", __name__)
F = TypeVar("F", bound=Callable[..., object])
OPEN_ENDPOINTS = frozenset({"auth.login", "auth.choose_language", "static"})


def actor() -> audit.Actor:
    person: StaffRecord = g.staff
    return audit.Actor(person.id, person.name, client_address())


def record(db: Session, action: str, subject: str | None = None, **detail: object) -> int:
    """Write this request's action to the audit trail, in the action's own transaction."""
    return audit.record(db, actor(), action, console().clock(), subject, **detail)


def requires(role: str) -> Callable[[F], F]:
    """The page needs at least `role` (cashier < manager < admin)."""

    def decorate(view: F) -> F:
        @wraps(view)
        def guarded(*args: object, **kwargs: object) -> object:
            if not staff.role_allows(g.staff.role, role):
                with console().transaction() as db:
                    record(db, "refused", request.path, needs=role)
                abort(403)
            return view(*args, **kwargs)

        return guarded  # type: ignore[return-value]  # wraps() keeps the view's signature

    return decorate


def load_staff() -> Response | None:
    """Who is signed in (an idle or ended session counts as none); everyone else goes to sign in."""
    g.staff = None
    token = session.get("token")
    if isinstance(token, str):
        ctx = console()
        with ctx.transaction() as db:
            g.staff = staff.current_staff(db, token, ctx.clock(), ctx.settings.idle_timeout_s)
        if g.staff is None:
            session.pop("token", None)
    if g.staff is None and request.endpoint not in OPEN_ENDPOINTS:
        return redirect(url_for("auth.login"))
    return None


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    if request.method == "GET":
        return render_template("login.html")
    ctx = console()
    name = request.form.get("name", "").strip()[:64]
    now, client = ctx.clock(), client_address()
    try:
        with ctx.transaction() as db:
            password, code = request.form.get("password", ""), request.form.get("code", "")[:16]
            signed_in = staff.sign_in(db, ctx.vault, name, password, code, client, now)
            audit.record(db, audit.Actor(signed_in.staff.id, signed_in.staff.name, client), "login", now)
    except SignInRefused as exc:
        with ctx.transaction() as db:
            audit.record(db, audit.Actor(None, name or "-", client), "login.failed", now, reason=str(exc))
        return render_template("login.html", error=_sign_in_message(str(exc)), name=name), 401
    session.clear()  # a new CSRF token too: nothing from before the sign-in carries over
    session["token"] = signed_in.token
    return redirect(url_for("desk.home"))


def _sign_in_message(reason: str) -> str:
    if reason.startswith("too many"):
        return gettext("Too many failed sign-ins. Wait 15 minutes or ask an administrator.")
    if "code" in reason:
        return gettext("Wrong code: type the code your authenticator app shows now.")
    if "second factor" in reason:
        return gettext("Your second factor cannot be read. Ask an administrator to turn it off.")
    return gettext("Wrong name or password.")


@bp.post("/logout")
def logout() -> Response:
    ctx = console()
    with ctx.transaction() as db:
        staff.sign_out(db, session["token"], ctx.clock())
        record(db, "logout")
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/account", methods=["GET", "POST"])
@requires("cashier")
def account() -> ResponseReturnValue:
    """One's own second factor: set up an authenticator app (a code proves it works), or see it is on."""
    ctx = console()
    if request.method == "POST":
        secret = session.get("totp_setup")
        if not isinstance(secret, str):
            return redirect(url_for("auth.account"))
        try:
            with ctx.transaction() as db:
                staff.enable_totp(db, ctx.vault, g.staff, secret, request.form.get("code", "")[:16], ctx.clock())
                record(db, "staff.totp_on", g.staff.name)
        except ServiceError as exc:
            return render_template("account.html", secret=secret, uri=_uri(secret), error=str(exc)), 400
        session.pop("totp_setup", None)
        flash(gettext("The second factor is on: sign-ins now ask for a code."), "success")
        return redirect(url_for("auth.account"))
    if g.staff.has_totp:
        return render_template("account.html")
    secret = session["totp_setup"] = staff.new_totp_secret()
    return render_template("account.html", secret=secret, uri=_uri(secret))


def _uri(secret: str) -> str:
    return totp.provisioning_uri(secret, g.staff.name, "Hotspot console")


@bp.get("/language/<code>")
def choose_language(code: str) -> Response:
    if code not in LANGUAGES:
        abort(404)
    response = redirect(url_for("desk.home"))
    response.set_cookie(LANGUAGE_COOKIE, code, max_age=365 * 86400, samesite="Strict", httponly=True)
    return response
