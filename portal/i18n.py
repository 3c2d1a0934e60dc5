"""The guest's language (Accept-Language, or the link they chose) and everything shown in it: refusal
messages, money, durations, byte counts, dates in the hotspot's local time."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_datetime
from babel.numbers import format_currency, format_decimal
from babel.support import Translations
from flask import Flask, g, request
from flask_babel import Babel, get_locale, lazy_gettext
from flask_babel.speaklater import LazyString
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header

from rlm_hotspot.core.decisions import Refusal
from rlm_hotspot.core.money import Currency

LANGUAGES = {"en": "English", "ru": "Русский"}
LANGUAGE_COOKIE = "lang"
TRANSLATIONS = Path(str(resources.files(__package__) / "translations"))  # package data, like templates/ and static/

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


def choose_language(chosen: str | None, accept_language: str | None) -> str:
    """The link the guest chose (the `lang` cookie), else the browser's best match, else English."""
    if chosen in LANGUAGES:
        return chosen
    return _browser_language(accept_language)


@lru_cache(maxsize=1024)  # a browser sends the same header with every heartbeat; few distinct ones exist
def _browser_language(accept_language: str | None) -> str:
    return parse_accept_header(accept_language, LanguageAccept).best_match(LANGUAGES) or "en"


def select_locale() -> str:
    return choose_language(request.cookies.get(LANGUAGE_COOKIE), request.headers.get("Accept-Language"))


def init_i18n(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", "en")
    Babel(app, locale_selector=select_locale)
    app.jinja_env.globals.update(languages=LANGUAGES)
    app.context_processor(_language_of_the_page)


def _language_of_the_page() -> dict[str, object]:
    """The templates' _() bound to the request's Wording once per page, in place of the i18n extension's
    callables: those look the locale up again on every call, and the status page (a guest's no-JS
    heartbeat) has dozens. Its text is plain, so the template escapes it like any other value."""
    words = wording()
    return {
        "_": words.gettext,
        "current_language": words.language,
    }


def N_(message: str) -> str:
    """Marks a message for the catalogue (pybabel knows the name); it is translated where it is shown."""
    return message


# Decimal units, as tariffs price them (1 MB = 1,000,000 bytes).
DATA_UNITS = ((N_("GB"), 10**9), (N_("MB"), 10**6), (N_("kB"), 10**3))


class Wording:
    """Money, durations, byte counts and dates in one language, with its translations loaded once.

    Explicit, not looked up through Flask-Babel's request context on every call: the heartbeat formats a
    guest's numbers every few seconds, and uses this outside Flask's request cycle too. Values repeat
    from one heartbeat to the next, so the costlier formats are remembered.
    """

    def __init__(self, language: str) -> None:
        self.language = language
        self.locale = Locale.parse(language)
        self.translations = Translations.load(TRANSLATIONS, [language])

    def gettext(self, message: str, **variables: object) -> str:
        text = self.translations.gettext(message)
        return text % variables if variables else text

    @lru_cache(maxsize=8192)  # noqa: B019 - one Wording per language, kept for the process's life
    def money(self, amount: int, currency: Currency) -> str:
        """Minor units for people in their locale ("5,00 €"); Decimal only to format, never to bill."""
        return format_currency(Decimal(amount).scaleb(-currency.exponent), currency.code, locale=self.locale)

    def duration(self, seconds: int) -> str:
        hours, rest = divmod(max(0, seconds), 3600)
        minutes, secs = divmod(rest, 60)
        if hours:
            return self.gettext("%(hours)d h %(minutes)02d min", hours=hours, minutes=minutes)
        if minutes:
            return self.gettext("%(minutes)d min %(seconds)02d s", minutes=minutes, seconds=secs)
        return self.gettext("%(seconds)d s", seconds=secs)

    @lru_cache(maxsize=8192)  # noqa: B019 - see money
    def data_size(self, octets: int) -> str:
        """A byte count in the largest decimal unit it reaches."""
        for unit, size in DATA_UNITS:
            if octets >= size:
                number = format_decimal(Decimal(octets) / size, format="#,##0.0", locale=self.locale)
                return f"{number} {self.gettext(unit)}"
        return self.gettext("%(bytes)d bytes", bytes=octets)

    @lru_cache(maxsize=4096)  # noqa: B019 - see money
    def local_time(self, moment: datetime, timezone: str) -> str:
        """A moment in the hotspot's local time, with the zone's name so no one guesses."""
        zone = ZoneInfo(timezone)
        text = format_datetime(moment.astimezone(zone), "medium", tzinfo=zone, locale=self.locale)
        return f"{text} ({timezone})"


WORDINGS = {language: Wording(language) for language in LANGUAGES}


def wording() -> Wording:
    """The current request's language (looked up once per request)."""
    words: Wording | None = g.get("wording")
    if words is None:
        words = g.wording = WORDINGS.get(str(get_locale()), WORDINGS["en"])
    return words


def money(amount: int, currency: Currency) -> str:
    return wording().money(amount, currency)
