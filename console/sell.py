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
PRESET = "preset:"


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
    ctx = console()
    fmt = request.form.get("format", "receipt-80")
    choice = request.form.get("batch", "")
    try:
        count = int(request.form.get("count", "1"))
        if fmt not in FORMATS:
            raise ServiceError("choose a print format")
        with ctx.transaction() as db:
            currency = ctx.currency(db)
            price = _price(currency, request.form.get("price", ""))
            sold_as = {"staff_id": g.staff.id, "count": count, "price_each": price, "now": ctx.clock()}
            if choice.startswith(PRESET):  # "preset:<hotspot id>:<face value>": the console picks the batch
                hotspot_id, face_value = (int(part) for part in choice.removeprefix(PRESET).split(":"))
                sale = desk.sell_preset(db, ctx.vault, hotspot_id=hotspot_id, face_value=face_value, **sold_as)
            else:
                sale = desk.sell(db, ctx.vault, batch_id=int(choice), **sold_as)
            record(
                db,
                "card.sell",
                f"batch {sale.batch_id}",
                cards=[c.number for c in sale.cards],
                price_each=sale.price_each,
                format=fmt,
            )
    except ValueError as exc:  # ServiceError and MoneyError are ValueErrors; so is a mangled number
        flash(
            str(exc) if isinstance(exc, ServiceError | MoneyError) else gettext("Choose a batch and a count."), "error"
        )
        return redirect(url_for("sell.stock"))
    if fmt == "pdf":
        return _pdf(sale, currency)
    return render_template(
        "receipt.html",
        sale=sale,
        currency=currency,
        width=fmt.split("-")[1],
        deadline=deadline_text(sale),
        display=display_card_number,
        now=ctx.clock(),
    )


def _price(currency: Currency, text: str) -> int | None:
    """The price typed at the desk, or None for the face value."""
    return currency.parse(text.strip()) if text.strip() else None


def _pdf(sale: desk.Sale, currency: Currency) -> Response:
    """The A4 scratch-card sheet of `hotspotctl cards export`, for the cards just sold."""
    ctx = console()
    face = currency.format(sale.face_value)
    deadline = deadline_text(sale)
    printable = [
        PrintableCard(number=c.number, pin=c.pin, face_value=face, deadline=deadline, hotspot=sale.hotspot)
        for c in sale.cards
    ]
    title = sale.batch_name or f"Series {sale.series:04d}"
    pdf = render_scratch_sheet(printable, title=title, portal_url=sale.portal_url or ctx.settings.core.portal_url)
    response = Response(pdf, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="cards-{sale.series:04d}.pdf"'
    return response


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
