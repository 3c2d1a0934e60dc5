"""Admin pages: staff accounts, and the configuration as it stands (tariffs, hotspots, NAS, batches) with
blocking and unblocking whole batches. Creating tariffs, hotspots, NAS and batches stays with hotspotctl."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext
from werkzeug.wrappers import Response

from console.auth import record, requires
from console.context import console
from rlm_hotspot.services import cards, catalog, desk, staff
from rlm_hotspot.services.errors import ServiceError

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.get("/staff")
@requires("admin")
def staff_list() -> str:
    with console().transaction() as db:
        people = staff.list_staff(db)
    return render_template("staff.html", people=people, roles=staff.ROLES)


@bp.post("/staff")
@requires("admin")
def staff_add() -> Response:
    ctx = console()
    name, role = request.form.get("name", "").strip(), request.form.get("role", "")
    try:
        with ctx.transaction() as db:
            staff.add_staff(db, name, role, request.form.get("password", ""), ctx.clock())
            record(db, "staff.add", name, role=role)
        flash(gettext("Account %(name)s created.", name=name), "success")
    except ServiceError as exc:
        flash(str(exc), "error")
    return redirect(url_for("admin.staff_list"))


@bp.post("/staff/<name>")
@requires("admin")
def staff_change(name: str) -> Response:
    """Change a role, disable or enable an account, or set a new password (its sessions end)."""
    ctx = console()
    role = request.form.get("role") or None
    active = {"1": True, "0": False}.get(request.form.get("active", ""))
    password = request.form.get("password") or None
    try:
        with ctx.transaction() as db:
            staff.change_staff(db, name, ctx.clock(), role=role, active=active, password=password)
            clear_totp = request.form.get("clear_totp") == "1"
            if clear_totp:
                staff.clear_totp(db, name)
            record(
                db, "staff.change", name, role=role, active=active, new_password=password is not None,
                totp_cleared=clear_totp,
            )  # fmt: skip
        flash(gettext("Account %(name)s changed.", name=name), "success")
    except ServiceError as exc:
        flash(str(exc), "error")
    return redirect(url_for("admin.staff_list"))


@bp.get("/setup")
@requires("admin")
def setup() -> str:
    with console().transaction() as db:
        return render_template(
            "setup.html",
            tariffs=catalog.list_tariffs(db),
            hotspots=catalog.list_hotspots(db),
            nas=catalog.list_nas(db),
            batches=desk.batches(db),
            currency=catalog.currency(db),
        )


@bp.post("/batch/<int:batch_id>/block")
@requires("admin")
def batch_block(batch_id: int) -> Response:
    blocked = request.form.get("blocked") == "1"
    ctx = console()
    try:
        with ctx.transaction() as db:
            changed = cards.set_blocked(db, blocked=blocked, batch_id=batch_id)
            record(db, "batch.block" if blocked else "batch.unblock", str(batch_id), changed=changed)
        flash(gettext("%(count)d card(s) changed.", count=changed), "success")
    except ServiceError as exc:
        flash(str(exc), "error")
    return redirect(url_for("admin.setup"))
