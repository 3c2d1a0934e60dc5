"""Selling cards: take them from stock and print them (a receipt-printer slip or the A4 scratch-card PDF),
or record the sale of a card printed beforehand. A card's PIN is shown in this one response only: the
response is never cached, the PIN never in a URL or a log line."""

from __future__ import annotations

from flask import Blueprint, Response, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext
from werkzeug.wrappers import Response as BaseResponse

from console.auth import record, requires
from console.context import console
from console.i18n import deadline_text, money
from rlm_hotspot.core.cardcode import display_card_number
from rlm_hotspot.core.money import Currency, MoneyError
from rlm_hotspot.printsheet import PrintableCard, render_scratch_sheet
from rlm_hotspot.services import desk
from rlm_hotspot.services.errors import ServiceError

bp = Blueprint("sell", __name__)
FORMATS = ("receipt-58", "receipt-80", "pdf")
PRESET = "preset:"  # a line naming a hotspot's preset face value rather than a batch


@bp.get("/sell")
@requires("cashier")
def stock() -> str:
    ctx = console()
    with ctx.transaction() as db:
        rows, presets, currency = desk.stock(db, ctx.clock()), desk.presets(db, ctx.clock()), ctx.currency(db)
    return render_template("sell.html", stock=rows, presets=presets, currency=currency, formats=FORMATS)


@bp.post("/sell")
@requires("cashier")
def sell() -> BaseResponse | str:
    """One sale of one or several lines (a face value or a batch, and how many of it)."""
    ctx = console()
    fmt = request.form.get("format", "receipt-80")
    try:
        lines = _lines(request.form.getlist("batch"), request.form.getlist("count"))
        if fmt not in FORMATS:
            raise ServiceError("choose a print format")
        with ctx.transaction() as db:
            currency = ctx.currency(db)
            price = _price(currency, request.form.get("price", ""))
            sales = desk.sell_lines(db, ctx.vault, staff_id=g.staff.id, lines=lines, price_each=price, now=ctx.clock())
            record(
                db,
                "card.sell",
                ", ".join(f"batch {sale.batch_id}" for sale in sales),
                lines=[{"batch": s.batch_id, "cards": [c.number for c in s.cards], "price_each": s.price_each}
                       for s in sales],
                total=_total(sales),
                format=fmt,
            )  # fmt: skip
    except ValueError as exc:  # ServiceError and MoneyError are ValueErrors; so is a mangled number
        flash(
            str(exc) if isinstance(exc, ServiceError | MoneyError) else gettext("Choose a batch and a count."), "error"
        )
        return redirect(url_for("sell.stock"))
    if fmt == "pdf":
        return _pdf(sales, currency)
    return render_receipt(sales, currency, fmt.split("-")[1])


def render_receipt(sales: list[desk.Sale], currency: Currency, width: str) -> str:
    """The slips of a sale (or a reprint), one per card, each with its own batch's face value and dates."""
    return render_template(
        "receipt.html",
        sales=sales,
        total=_total(sales),
        currency=currency,
        width=width,
        deadline_of=deadline_text,
        display=display_card_number,
        now=console().clock(),
    )


def _lines(choices: list[str], counts: list[str]) -> list[desk.SaleLine]:
    """The sale's lines as the form sends them: each face value or batch offered, and how many of it
    (`preset:<hotspot id>:<face value>` for a preset, the batch id for a batch)."""
    if len(choices) != len(counts):
        raise ValueError("a line without its count")
    lines = []
    for choice, count in zip(choices, counts, strict=True):
        how_many = int(count or 0)
        if choice.startswith(PRESET):
            hotspot_id, face_value = (int(part) for part in choice.removeprefix(PRESET).split(":"))
            lines.append(desk.SaleLine(how_many, preset=(hotspot_id, face_value)))
        else:
            lines.append(desk.SaleLine(how_many, batch_id=int(choice)))
    return lines


def _total(sales: list[desk.Sale]) -> int:
    """What the guest pays for the whole sale (0 for a reprint)."""
    return sum((sale.price_each or 0) * len(sale.cards) for sale in sales)


def _price(currency: Currency, text: str) -> int | None:
    """The price typed at the desk, or None for the face value."""
    return currency.parse(text.strip()) if text.strip() else None


def _pdf(sales: list[desk.Sale], currency: Currency) -> Response:
    """The A4 scratch-card sheet of `hotspotctl cards export`, for the cards just sold."""
    ctx = console()
    printable = [
        PrintableCard(
            number=c.number, pin=c.pin, face_value=currency.format(sale.face_value), deadline=deadline_text(sale),
            hotspot=sale.hotspot,
        )
        for sale in sales
        for c in sale.cards
    ]  # fmt: skip
    first = sales[0]
    title = first.batch_name if len(sales) == 1 and first.batch_name else _series(sales)
    pdf = render_scratch_sheet(printable, title=title, portal_url=first.portal_url or ctx.settings.core.portal_url)
    response = Response(pdf, mimetype="application/pdf")
    names = "-".join(f"{sale.series:04d}" for sale in sales)
    response.headers["Content-Disposition"] = f'attachment; filename="cards-{names}.pdf"'
    return response


def _series(sales: list[desk.Sale]) -> str:
    return "Series " + ", ".join(f"{sale.series:04d}" for sale in sales)


@bp.post("/sell/mark")
@requires("cashier")
def mark_sold() -> BaseResponse:
    """A card printed beforehand changes hands: record who sold it, when and for how much."""
    ctx = console()
    number = request.form.get("number", "").strip()[:40]
    try:
        with ctx.transaction() as db:
            currency = ctx.currency(db)
            price = _price(currency, request.form.get("price", ""))
            card = desk.mark_sold(db, number, staff_id=g.staff.id, price=price, now=ctx.clock())
            paid = card.face_value if price is None else price
            record(db, "card.mark_sold", card.number, price=paid)
        flash(
            gettext(
                "Card %(number)s sold for %(price)s.",
                number=display_card_number(card.number),
                price=money(paid, currency),
            ),
            "success",
        )
    except ValueError as exc:
        flash(str(exc), "error")
    return redirect(url_for("sell.stock"))
