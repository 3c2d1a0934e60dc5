"""The desk's everyday pages: the place at a glance, who is online, and helping a guest with a card."""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext
from werkzeug.wrappers import Response

from console.auth import record, requires
from console.chart import bar_chart
from console.context import console
from console.i18n import money
from console.sell import render_receipt
from rlm_hotspot.core.cardcode import display_card_number
from rlm_hotspot.core.money import Currency, MoneyError
from rlm_hotspot.services import access, cards, desk, reports
from rlm_hotspot.services.errors import CardRefused, ServiceError

bp = Blueprint("desk", __name__)
CHART_DAYS = 14


@bp.get("/")
@requires("cashier")
def home() -> str:
    ctx = console()
    now, zone = ctx.clock(), ctx.settings.timezone  # the desk's day; each row shows its hotspot's own time
    day_start, day_end = desk.local_day(now, zone)
    with ctx.transaction() as db:
        currency = ctx.currency(db)
        online = desk.online(db)
        sold_today = desk.sales_between(db, day_start, day_end)
        refunds_today = desk.refunds_between(db, day_start, day_end)
        since = day_start - timedelta(days=CHART_DAYS - 1)
        revenue = reports.report(db, "revenue", "day", since, day_end)
        takings = dict(desk.takings_per_day(db, since, day_end, zone))
    # a report's columns depend on its grouping, so its rows stay dicts; "total" is a bigint
    by_day = {str(row["day"]): int(row["total"] or 0) for row in revenue}  # type: ignore[call-overload]
    days = [(since + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(CHART_DAYS)]
    chart = bar_chart(
        [(day[5:], by_day.get(day, 0), takings.get(day, 0)) for day in days],
        label=lambda amount: money(amount, currency),
    )
    return render_template(
        "home.html",
        online=online,
        sold_today=sold_today,
        takings_today=sum(row.takings for row in sold_today),
        cards_today=sum(row.cards for row in sold_today),
        refunds_today=refunds_today,
        refunded_today=sum(row.paid_out for row in refunds_today),
        chart=chart,
        currency=currency,
    )


@bp.get("/hours")
@requires("cashier")
def hours() -> str:
    """Usage and money per hour of one day of the desk (`?day=YYYY-MM-DD`, else today)."""
    ctx = console()
    today = ctx.clock().astimezone(ZoneInfo(ctx.settings.timezone)).date()
    try:
        day = date.fromisoformat(request.args.get("day", "")[:10]) if request.args.get("day") else today
    except ValueError:
        flash(gettext("Give the day as YYYY-MM-DD."), "error")
        day = today
    with ctx.transaction() as db:
        currency = ctx.currency(db)
        rows = desk.per_hour(db, day, ctx.settings.timezone)
    chart = bar_chart(
        [(f"{row.hour:02d}", row.used, row.takings) for row in rows],
        label=lambda amount: money(amount, currency),
    )
    return render_template(
        "hours.html", rows=rows, chart=chart, currency=currency, day=day,
        previous=day - timedelta(days=1), next=day + timedelta(days=1), today=today,
    )  # fmt: skip


@bp.get("/online")
@requires("cashier")
def online() -> str:
    """Who is online now, per hotspot; `?part=1` is the table alone, for the page's live refresh."""
    ctx = console()
    with ctx.transaction() as db:
        currency, grouped = ctx.currency(db), desk.online(db)
    template = "online_part.html" if request.args.get("part") else "online.html"
    return render_template(template, online=grouped, currency=currency)


@bp.get("/card")
@requires("cashier")
def find() -> Response | str | tuple[str, int]:
    """Find a card by the number the guest reads out (a typo is caught by the check digit)."""
    text = request.args.get("number", "").strip()[:40]
    if not text:
        return render_template("find.html")
    ctx = console()
    try:
        with ctx.transaction() as db:
            overview = desk.card_overview(db, ctx.policy, text, ctx.clock())
            currency = ctx.currency(db)
            record(db, "card.view", overview.card.number)
    except CardRefused as exc:
        return render_template("find.html", error=_refusal_text(exc), number=text), 404
    return render_template("card.html", o=overview, currency=currency, shown=display_card_number(overview.card.number))


def _refusal_text(exc: CardRefused) -> str:
    if exc.refusal.name == "BAD_CARD_NUMBER":
        return gettext("This number has a typo (its check digit does not match). Please check every digit.")
    return gettext("There is no card with this number.")


def _back_to(number: str) -> Response:
    return redirect(url_for("desk.find", number=number))


@bp.post("/card/<number>/block")
@requires("cashier")
def block(number: str) -> Response:
    """A lost or stolen card: blocked at once; its live sessions are cut by the worker."""
    blocked = request.form.get("blocked") == "1"
    ctx = console()
    with ctx.transaction() as db:
        changed = cards.set_blocked(db, blocked=blocked, number=number)
        record(db, "card.block" if blocked else "card.unblock", number, changed=changed)
    flash(gettext("The card is blocked.") if blocked else gettext("The card is unblocked."), "success")
    return _back_to(number)


@bp.post("/card/<number>/lockout")
@requires("cashier")
def clear_card_lockout(number: str) -> Response:
    ctx = console()
    with ctx.transaction() as db:
        cleared = access.clear_lockout(db, ctx.clock(), card_text=number)
        record(db, "lockout.clear", cleared)
    flash(gettext("The wrong PINs typed before now no longer count."), "success")
    return _back_to(number)


@bp.post("/session/<int:session_id>/end")
@requires("cashier")
def end_session(session_id: int) -> Response:
    number = request.form.get("number", "")
    ctx = console()
    try:
        with ctx.transaction() as db:
            desk.end_session(db, session_id, ctx.clock())
            record(db, "session.end", str(session_id), card=number)
        flash(gettext("The session will end in a few seconds."), "success")
    except ServiceError:
        flash(gettext("This session has ended already."), "error")
    return _back_to(number) if number else redirect(url_for("desk.online"))


@bp.post("/card/<number>/adjust")
@requires("manager")
def adjust(number: str) -> Response:
    """A manager's correction of a balance, with a reason, through the ledger."""
    ctx = console()
    try:
        with ctx.transaction() as db:
            amount = _signed_amount(ctx.currency(db), request.form.get("amount", ""))
            reason = request.form.get("reason", "").strip()[:200]
            audit_id = record(db, "balance.adjust", number, amount=amount, reason=reason)
            desk.adjust(db, number, amount, reason, staff_id=g.staff.id, audit_id=audit_id, now=ctx.clock())
        flash(gettext("The balance is adjusted."), "success")
    except (ServiceError, MoneyError) as exc:
        flash(str(exc), "error")
    return _back_to(number)


def _signed_amount(currency: Currency, text: str) -> int:
    """An adjustment as typed: "1.50" adds, "-1.50" (hyphen or U+2212 minus sign) takes away."""
    cleaned = text.strip().replace("\u2212", "-")
    if cleaned.startswith("-"):
        return -currency.parse(cleaned[1:])
    return currency.parse(cleaned)


@bp.post("/card/<number>/topup")
@requires("cashier")
def top_up(number: str) -> Response:
    """The guest hands over a second card: its value moves onto this one (its PIN typed at the desk)."""
    ctx = console()
    source = request.form.get("source", "").strip()[:40]
    pin = "".join(request.form.get("pin", "").split()).upper()[:32]
    with ctx.transaction() as db:  # a refusal commits too: its wrong PIN counts towards the card's lockout
        try:
            done = desk.top_up_at_desk(
                db, ctx.vault, ctx.policy, number, source, pin, staff_id=g.staff.id, now=ctx.clock()
            )
        except ServiceError as exc:
            record(db, "card.topup.refused", number, source=source, reason=str(exc))
            flash(str(exc), "error")
        else:
            record(db, "card.topup", number, source=done.source_number, amount=done.amount)
            amount = money(done.amount, ctx.currency(db))
            flash(gettext("%(amount)s moved onto this card.", amount=amount), "success")
    return _back_to(number)


@bp.post("/card/<number>/refund")
@requires("manager")
def refund(number: str) -> Response:
    """A manager pays money back over the counter: the card's balance goes down (ledger cause `refund`)."""
    ctx = console()
    try:
        with ctx.transaction() as db:
            currency = ctx.currency(db)
            amount = currency.parse(request.form.get("amount", ""))
            reason = request.form.get("reason", "").strip()[:200]
            audit_id = record(db, "card.refund", number, amount=amount, reason=reason)
            desk.refund(db, number, amount, reason, staff_id=g.staff.id, audit_id=audit_id, now=ctx.clock())
        flash(gettext("%(amount)s refunded: pay it to the guest.", amount=money(amount, currency)), "success")
    except (ServiceError, MoneyError) as exc:
        flash(str(exc), "error")
    return _back_to(number)


@bp.post("/card/<number>/reprint")
@requires("manager")
def reprint(number: str) -> str:
    """The slip of a card whose printout was lost, PIN included: a manager's explicit, audited act."""
    ctx = console()
    with ctx.transaction() as db:
        sale = desk.reprint(db, ctx.vault, number)
        record(db, "card.reprint", number)
        currency = ctx.currency(db)
    return render_receipt([sale], currency, "80")


@bp.get("/lockouts")
@requires("cashier")
def lockouts() -> str:
    ctx = console()
    with ctx.transaction() as db:
        rows = access.list_lockouts(db, ctx.policy, ctx.clock())
    return render_template("lockouts.html", rows=rows)


@bp.post("/lockouts/clear")
@requires("cashier")
def clear_lockout() -> Response:
    kind, subject = request.form.get("kind"), request.form.get("subject", "")[:64]
    ctx = console()
    with ctx.transaction() as db:
        if kind == "card":
            cleared = access.clear_lockout(db, ctx.clock(), card_text=subject)
        else:
            cleared = access.clear_lockout(db, ctx.clock(), client=subject)
        record(db, "lockout.clear", cleared)
    flash(gettext("The lockout is lifted."), "success")
    return redirect(url_for("desk.lockouts"))
