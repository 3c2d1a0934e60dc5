"""Admin pages: staff accounts, and the configuration (tariffs, hotspots, NAS, batches, the desk's face
values): tariffs, hotspots and NAS are made and changed by the catalog service the CLI uses, under its
rules (a tariff's prices never change in place); batches are made, blocked or unblocked whole, and
exported with their PINs (the CLI's file, a deliberate act with a reason on the audit trail)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from datetime import timedelta

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask import Response as FileResponse
from flask_babel import gettext
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from console.auth import record, requires
from console.context import console
from console.i18n import money
from rlm_hotspot import cardfiles
from rlm_hotspot.core.admin_input import BAND_FORMAT, InputError, base_prices_never_charged, parse_bands, parse_seconds
from rlm_hotspot.core.money import Currency, MoneyError
from rlm_hotspot.pins import PinKeyError
from rlm_hotspot.services import audit, cards, catalog, desk, staff
from rlm_hotspot.services.errors import NotFound, ServiceError

bp = Blueprint("admin", __name__, url_prefix="/admin")
MAX_BATCH_IN_CONSOLE = 10_000  # a request, not a job: larger batches with hotspotctl


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
            exported=audit.last_batch_exports(db),
            presets=desk.presets(db, console().clock()),
            currency=catalog.currency(db),
            modes=("radius", "standalone"),
            meters=("radius", "netflow"),
            vendors=catalog.NAS_VENDORS,
        )


@bp.post("/batch")
@requires("admin")
def batch_generate() -> Response:
    """New cards for the desk to sell. Their PINs are not shown here: each is printed when its card is sold."""
    ctx = console()
    form = request.form
    try:
        if ctx.settings.core.pin_mode != "encrypted":
            raise ServiceError("hashed PINs are only shown when cards are made: generate them with hotspotctl")
        count = int(form.get("count", ""))
        validity_days = int(form.get("validity_days") or 0)
        with ctx.transaction() as db:
            spec = cards.BatchSpec(
                count=count,
                face_value=catalog.currency(db).parse(form.get("face_value", "").strip()),
                name=form.get("name", "").strip()[:100] or None,
                hotspot=form.get("hotspot") or None,
                validity=timedelta(days=validity_days) if validity_days else None,
            )
            if count > MAX_BATCH_IN_CONSOLE:
                raise ServiceError(f"the console makes up to {MAX_BATCH_IN_CONSOLE} cards at a time")
            made = cards.generate_batch(db, ctx.vault, spec, ctx.clock(), "encrypted")
            record(db, "batch.generate", str(made.batch_id), count=count, face_value=spec.face_value)
        flash(gettext("%(count)d cards made (series %(series)04d).", count=count, series=made.series), "success")
    except ValueError as exc:  # ServiceError, MoneyError, a count that is not a number
        flash(str(exc) if isinstance(exc, ServiceError | MoneyError) else gettext("Type a number of cards."), "error")
    return redirect(url_for("admin.setup"))


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


@bp.get("/batch/<int:batch_id>/export")
@requires("admin")
def batch_export_form(batch_id: int) -> str:
    """The confirmation before a batch's PINs leave: what the file holds, when and by whom it was last
    exported, and the reason to give. No PIN on this page."""
    ctx = console()
    with ctx.transaction() as db:
        found = desk.batches(db, batch_id)
        if not found:
            abort(404)
        try:
            cards.exportable_batch(db, batch_id, max_cards=MAX_BATCH_IN_CONSOLE)
            refusal = None
        except ServiceError as exc:
            refusal = _export_refusal(exc, batch_id)
        return render_template(
            "export.html",
            b=found[0],
            last=audit.last_batch_exports(db, batch_id).get(batch_id),
            refusal=refusal,
            currency=ctx.currency(db),
        )


@bp.post("/batch/<int:batch_id>/export")
@requires("admin")
def batch_export(batch_id: int) -> Response:
    """A batch with its PINs, as `hotspotctl cards export` writes it: the A4 scratch-card sheet or the CSV.
    One audit row with the reason (never a PIN); a refusal exports nothing and is on the trail too."""
    ctx = console()
    fmt, reason = request.form.get("format", ""), request.form.get("reason", "").strip()[:200]
    if fmt not in cardfiles.FORMATS or not reason:
        flash(
            gettext("Give a reason: it is written to the audit trail with the export.")
            if fmt in cardfiles.FORMATS
            else gettext("Choose PDF or CSV."),
            "error",
        )
        return redirect(url_for("admin.batch_export_form", batch_id=batch_id))
    with ctx.transaction() as db:  # a refusal commits its audit row; an export commits with its row
        try:
            export = cards.export_batch(db, ctx.vault, batch_id, max_cards=MAX_BATCH_IN_CONSOLE)
        except (ServiceError, PinKeyError) as exc:
            record(db, "batch.export.refused", str(batch_id), batch_id=batch_id, format=fmt, why=str(exc))
            flash(_export_refusal(exc, batch_id), "error")
            return redirect(url_for("admin.setup"))
        again = batch_id in audit.last_batch_exports(db, batch_id)
        record(
            db, "batch.export", str(batch_id), batch_id=batch_id, format=fmt, cards=len(export.cards), reason=reason,
            again=again,
        )  # fmt: skip
        data = cardfiles.batch_file(export, fmt, ctx.currency(db), ctx.settings.core.portal_url)
    response = FileResponse(data, mimetype=cardfiles.MIMETYPES[fmt])
    response.headers["Content-Disposition"] = f'attachment; filename="batch{batch_id}.{fmt}"'
    return response


def _export_refusal(exc: Exception, batch_id: int) -> str:
    """Why a batch's PINs cannot be exported here, in the admin's language."""
    if isinstance(exc, cards.HashedPins):
        return gettext(
            "The PINs of this batch are hashed: they could be printed only when it was made, so it cannot be "
            "exported. Nothing was exported."
        )
    if isinstance(exc, cards.TooManyToExport):
        return gettext(
            "This batch has %(count)d cards, more than the console exports at once (%(limit)d). Export it on "
            "the server: hotspotctl cards export --batch %(batch)d --output batch%(batch)d.pdf",
            count=exc.card_count, limit=MAX_BATCH_IN_CONSOLE, batch=batch_id,
        )  # fmt: skip
    if isinstance(exc, NotFound):
        return gettext("There is no batch %(batch)d.", batch=batch_id)
    if isinstance(exc, PinKeyError):
        return gettext(
            "The PINs do not open with the console's key file (hotspotctl pins status). Nothing was exported."
        )
    return str(exc)


@bp.post("/presets")
@requires("admin")
def preset_change() -> Response:
    """Add a face value to a hotspot's presets for the desk, or take one away (`offered=0`)."""
    ctx = console()
    hotspot, offered = request.form.get("hotspot", ""), request.form.get("offered") != "0"
    try:
        with ctx.transaction() as db:
            face_value = catalog.currency(db).parse(request.form.get("face_value", "").strip())
            changed = desk.set_preset(db, hotspot, face_value, offered=offered)
            record(db, "preset.add" if offered else "preset.remove", hotspot, face_value=face_value, changed=changed)
        flash(gettext("The face values sold at the desk are saved."), "success")
    except (ServiceError, MoneyError) as exc:
        flash(str(exc), "error")
    return redirect(url_for("admin.setup"))


def _configure(action: str, change: Callable[[Session, Currency], dict[str, object]]) -> Response:
    """One Setup form: the change and its audit row in one transaction, a clear message if it is refused."""
    ctx = console()
    name = request.form.get("name", "").strip()[:64]
    try:
        with ctx.transaction() as db:
            detail = change(db, catalog.currency(db))
            record(db, action, name, **detail)
        flash(gettext("%(name)s is saved.", name=name), "success")
    except (ServiceError, MoneyError, InputError) as exc:
        flash(str(exc), "error")
    except ValueError:
        flash(gettext("Type whole numbers for seconds, ports and counts."), "error")
    return redirect(url_for("admin.setup"))


def _text(field: str) -> str | None:
    """A form field as typed, None if left empty (a change leaves it as it is)."""
    value = request.form.get(field, "").strip()
    return value or None


def _number(field: str) -> int | None:
    value = _text(field)
    return None if value is None else int(value)


def _amount(currency: Currency, field: str) -> int | None:
    value = _text(field)
    return None if value is None else currency.parse(value)


def _seconds(field: str) -> int | None:
    """A duration as hotspotctl takes it ('90s', '10m', '1h' or seconds)."""
    value = _text(field)
    return None if value is None else parse_seconds(value)


def _lines(field: str) -> list[str]:
    """A text area's entries, one a line (commas and spaces separate them too)."""
    return request.form.get(field, "").replace(",", "\n").split()


def _refuse_base_prices_never_charged(currency: Currency, spec: catalog.TariffSpec) -> None:
    """The console's words for hotspotctl's check: a base price no band repeats would never be charged."""
    unused = base_prices_never_charged(spec.time_price, spec.traffic_price, spec.bands)
    if not unused:
        return
    is_time = unused[0] == "time"
    raise ServiceError(
        gettext(
            "The base %(what)s price %(price)s would be charged at no time of day: each band runs until the "
            "next one starts, across midnight. Add a band where that price starts again (%(format)s).",
            what=gettext("time") if is_time else gettext("traffic"),
            price=money(spec.time_price if is_time else spec.traffic_price, currency),
            format=BAND_FORMAT,
        )
    )


_HOTSPOT_TIMINGS = ("interim_interval", "heartbeat_timeout", "hidden_grace")


def _hotspot_behaviour() -> dict[str, object]:
    """The hotspot settings an admin typed (empty ones left out), as `hotspotctl hotspot set` takes them:
    durations like '90s' or '10m', the idle timeout 'off' for none."""
    given: dict[str, object | None] = {field: _seconds(field) for field in _HOTSPOT_TIMINGS}
    given |= {"heartbeat": _text("heartbeat"), "max_rate_kbps": _number("max_rate_kbps")}
    changes = {setting: value for setting, value in given.items() if value is not None}
    idle = _text("idle_timeout")
    if idle is not None:
        changes["idle_timeout"] = None if idle.lower() == "off" else parse_seconds(idle)
    return changes


@bp.post("/tariff")
@requires("admin")
def tariff_add() -> Response:
    def add(db: Session, currency: Currency) -> dict[str, object]:
        traffic_price = _amount(currency, "traffic_price") or 0
        spec = catalog.TariffSpec(
            name=request.form.get("name", "").strip(),
            time_price=_amount(currency, "time_price") or 0,
            time_unit_seconds=_number("time_unit_seconds") or 60,
            time_increment_seconds=_seconds("time_increment") or 1,
            traffic_price=traffic_price,
            traffic_unit_bytes=_number("traffic_unit_bytes") or 1_000_000,
            traffic_direction=request.form.get("traffic_direction") or "total",
            bands=parse_bands(currency, request.form.get("bands", "").splitlines(), traffic_price),
            free_networks=tuple(_lines("free_networks")),
            simultaneous_use=_number("simultaneous_use") or 1,
            rate_up_kbps=_number("rate_up_kbps") or None,
            rate_down_kbps=_number("rate_down_kbps") or None,
        )
        _refuse_base_prices_never_charged(currency, spec)
        catalog.add_tariff(db, spec)
        return {
            "time_price": spec.time_price, "time_unit_seconds": spec.time_unit_seconds,
            "time_increment_seconds": spec.time_increment_seconds, "traffic_price": spec.traffic_price,
            "traffic_unit_bytes": spec.traffic_unit_bytes, "traffic_direction": spec.traffic_direction,
            "bands": [[band.start_minute, band.time_price, band.traffic_price] for band in spec.bands],
            "free_networks": list(spec.free_networks),
        }  # fmt: skip

    return _configure("tariff.add", add)


@bp.post("/tariff/change")
@requires("admin")
def tariff_change() -> Response:
    def change(db: Session, currency: Currency) -> dict[str, object]:
        # what a tariff allows, never what it charges (catalog.set_tariff): prices changed in place would
        # re-price usage already billed; a new price is a new tariff the hotspot moves to
        changed = catalog.set_tariff(
            db,
            request.form.get("name", ""),
            simultaneous_use=_number("simultaneous_use"),
            rate_up_kbps=_number("rate_up_kbps"),
            rate_down_kbps=_number("rate_down_kbps"),
        )
        return {"changed": changed}

    return _configure("tariff.change", change)


@bp.post("/hotspot")
@requires("admin")
def hotspot_add() -> Response:
    def add(db: Session, currency: Currency) -> dict[str, object]:
        mode = request.form.get("mode", "radius")
        behaviour = {"heartbeat": "on" if mode == "standalone" else "off"} | _hotspot_behaviour()  # as hotspotctl
        spec = catalog.HotspotSpec(
            name=request.form.get("name", "").strip(),
            timezone=request.form.get("timezone", "").strip(),
            tariff=request.form.get("tariff", ""),
            mode=mode,
            traffic_meter=request.form.get("traffic_meter", "radius"),
            portal_url=_text("portal_url"),
            **behaviour,  # type: ignore[arg-type]
        )
        catalog.add_hotspot(db, spec)
        return {field.name: getattr(spec, field.name) for field in fields(spec) if field.name != "name"}

    return _configure("hotspot.add", add)


@bp.post("/hotspot/change")
@requires("admin")
def hotspot_change() -> Response:
    def change(db: Session, currency: Currency) -> dict[str, object]:
        given = {field: _text(field) for field in ("tariff", "timezone", "portal_url", "traffic_meter")}
        changes = {field: value for field, value in given.items() if value is not None} | _hotspot_behaviour()
        changed = catalog.set_hotspot(db, request.form.get("name", ""), **changes)
        return {setting: new for setting, (_old, new) in changed.items()}

    return _configure("hotspot.change", change)


@bp.post("/nas")
@requires("admin")
def nas_add() -> Response:
    def add(db: Session, currency: Currency) -> dict[str, object]:
        address = request.form.get("ip_address", "").strip()
        catalog.add_nas(
            db,
            name=request.form.get("name", "").strip(),
            hotspot=request.form.get("hotspot", ""),
            ip_address=address,
            secret=request.form.get("secret", ""),
            coa_port=_number("coa_port") or 3799,
            vendor=request.form.get("vendor", "generic"),
        )
        return {"hotspot": request.form.get("hotspot", ""), "ip_address": address}  # never the secret

    return _configure("nas.add", add)


@bp.post("/nas/change")
@requires("admin")
def nas_change() -> Response:
    def change(db: Session, currency: Currency) -> dict[str, object]:
        given = {
            "hotspot": _text("hotspot"),
            "ip_address": _text("ip_address"),
            "secret": request.form.get("secret") or None,
            "coa_port": _number("coa_port"),
            "vendor": _text("vendor"),
        }
        changed = catalog.set_nas(
            db, request.form.get("name", ""), **{field: value for field, value in given.items() if value is not None}
        )
        return {"changed": changed}  # names only: never a secret

    return _configure("nas.change", change)
