"""The guest's language (Accept-Language, or the link they chose) and everything shown in it: refusal
messages, money, durations, byte counts, dates in the hotspot's local time."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.numbers import format_currency, format_decimal
from flask import Flask, request
from flask_babel import Babel, get_locale, gettext, lazy_gettext
from flask_babel.speaklater import LazyString

from rlm_hotspot.core.decisions import Refusal
from rlm_hotspot.core.money import Currency

LANGUAGES = {"en": "English", "ru": "Русский"}
LANGUAGE_COOKIE = "lang"

# Each refusal in words a guest can act on (the core's English sentences go to RADIUS Reply-Messages).
REFUSAL_MESSAGES: dict[Refusal, LazyString] = {
    Refusal.UNKNOWN_CARD: lazy_gettext("We do not know this card number. Please check it against your card."),
    Refusal.BAD_CARD_NUMBER: lazy_gettext("The card number has a typo. Please check every digit."),
    Refusal.WRONG_PIN: lazy_gettext("Wrong PIN. Please check it: the PIN is under the scratch-off panel."),
    Refusal.BLOCKED: lazy_gettext("This card is blocked. Please ask the staff."),
    Refusal.NOT_YET_VALID: lazy_gettext("This card cannot be used yet. Please ask the staff."),
    Refusal.EXPIRED: lazy_gettext("This card has expired."),
    Refusal.EXHAUSTED: lazy_gettext("This card has no money left. Please use another card."),
    Refusal.REDEEMED: lazy_gettext("This card's value was already added to another card."),
    Refusal.LOCKED_OUT: lazy_gettext("Too many wrong PINs. Please try again in %(minutes)d minutes."),
    Refusal.TOO_MANY_SESSIONS: lazy_gettext(
        "This card is already in use on another device. Log out there first, or wait a few minutes."
    ),
    Refusal.WRONG_HOTSPOT: lazy_gettext("This card cannot be used at this hotspot."),
    Refusal.PAP_ONLY: lazy_gettext("This card cannot be used with this kind of login. Please ask the staff."),
}


def refusal_message(refusal: Refusal, lockout_window_s: int = 0) -> str:
    """The guest-facing sentence; a lockout says how long it lasts (the window of the lockout policy)."""
    message = str(REFUSAL_MESSAGES[refusal])
    return message % {"minutes": -(-lockout_window_s // 60)} if refusal is Refusal.LOCKED_OUT else message


def select_locale() -> str:
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(LANGUAGES) or "en"


def init_i18n(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", "en")
    Babel(app, locale_selector=select_locale)
    app.jinja_env.globals.update(languages=LANGUAGES, current_language=lambda: str(get_locale()))


def money(amount: int, currency: Currency) -> str:
    """Minor units for people in their locale ("5,00 €"); Decimal only to format, never to bill."""
    return format_currency(Decimal(amount).scaleb(-currency.exponent), currency.code, locale=get_locale())


def duration(seconds: int) -> str:
    hours, rest = divmod(max(0, seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return gettext("%(hours)d h %(minutes)02d min", hours=hours, minutes=minutes)
    if minutes:
        return gettext("%(minutes)d min %(seconds)02d s", minutes=minutes, seconds=secs)
    return gettext("%(seconds)d s", seconds=secs)


# Decimal units, as tariffs price them (1 MB = 1,000,000 bytes); translated only when shown.
DATA_UNITS = ((lazy_gettext("GB"), 10**9), (lazy_gettext("MB"), 10**6), (lazy_gettext("kB"), 10**3))


def data_size(octets: int) -> str:
    """A byte count in the largest decimal unit it reaches."""
    for unit, size in DATA_UNITS:
        if octets >= size:
            number = format_decimal(Decimal(octets) / size, format="#,##0.0", locale=get_locale())
            return f"{number} {unit}"
    return gettext("%(bytes)d bytes", bytes=octets)


def local_time(moment: datetime, timezone: str) -> str:
    """A moment in the hotspot's local time, with the zone's name so no one guesses."""
    zone = ZoneInfo(timezone)
    text = format_datetime(moment.astimezone(zone), "medium", tzinfo=zone, locale=get_locale())
    return f"{text} ({timezone})"
