"""The staff member's language (the link they chose, else the browser's) and how numbers, money and
times are shown in it; times in the hotspot's local time zone, with its name."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.numbers import format_currency, format_decimal
from flask import Flask, request
from flask_babel import Babel, get_locale, gettext
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header

from rlm_hotspot.core.decisions import Refusal
from rlm_hotspot.core.money import Currency
from rlm_hotspot.services.desk import Sale

LANGUAGES = {"en": "English", "ru": "Русский"}
LANGUAGE_COOKIE = "lang"


def N_(message: str) -> str:
    """Marks a message for the catalogue; it is translated where it is shown."""
    return message


def select_locale() -> str:
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    return parse_accept_header(request.headers.get("Accept-Language"), LanguageAccept).best_match(LANGUAGES) or "en"


def money(amount: int | None, currency: Currency) -> str:
    if amount is None:
        return ""
    return format_currency(Decimal(amount).scaleb(-currency.exponent), currency.code, locale=get_locale())


def local_time(moment: datetime | None, timezone: str = "UTC") -> str:
    if moment is None:
        return ""
    zone = ZoneInfo(timezone)
    return f"{format_datetime(moment.astimezone(zone), 'short', tzinfo=zone, locale=get_locale())} ({timezone})"


def duration(seconds: int | None) -> str:
    hours, rest = divmod(max(0, int(seconds or 0)), 3600)
    return gettext("%(hours)d h %(minutes)02d min", hours=hours, minutes=rest // 60)


def data_size(octets: int | None) -> str:
    value = int(octets or 0)
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if value >= size:
            return f"{format_decimal(Decimal(value) / size, format='#,##0.0', locale=get_locale())} {unit}"
    return f"{value} B"


def deadline_text(sale: Sale) -> str | None:
    """What the card's face says about its dates, in the hotspot's local time."""
    parts = []
    if sale.use_before:
        parts.append(gettext("use before %(when)s", when=local_time(sale.use_before, sale.timezone)))
    if sale.validity_seconds:
        parts.append(
            gettext("valid %(days)s days after first use", days=sale.validity_seconds // 86400)
            if sale.validity_seconds % 86400 == 0
            else gettext("valid %(hours)s h after first use", hours=sale.validity_seconds // 3600)
        )
    if sale.expires_at:
        parts.append(gettext("expires %(when)s", when=local_time(sale.expires_at, sale.timezone)))
    return "; ".join(parts) or None


# Why a card cannot be used now, as the desk reads it (usable_refusal gives only these).
REFUSAL_WORDS = {
    Refusal.BLOCKED: N_("the card is blocked"),
    Refusal.NOT_YET_VALID: N_("the card is not valid yet"),
    Refusal.EXPIRED: N_("the card has expired"),
    Refusal.EXHAUSTED: N_("no money left on the card"),
    Refusal.REDEEMED: N_("its value was moved to another card"),
}


def refusal_text(refusal: Refusal) -> str:
    return gettext(REFUSAL_WORDS[refusal]) if refusal in REFUSAL_WORDS else refusal.message


def init_i18n(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", "en")
    Babel(app, locale_selector=select_locale)
    app.jinja_env.globals.update(languages=LANGUAGES, current_language=lambda: str(get_locale()), money=money)
    app.jinja_env.filters.update(
        local_time=local_time, duration=duration, data_size=data_size, refusal_text=refusal_text
    )


# Shown by name in the templates (`_(role)`): roles, report kinds and groupings.
NAMED_WORDS = (
    N_("cashier"), N_("manager"), N_("admin"), N_("sales"), N_("usage"), N_("revenue"),
    N_("day"), N_("hotspot"), N_("batch"),
)  # fmt: skip
