"""The two forms a guest fills in (login, top-up): every field checked before anything else sees it."""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import gettext
from werkzeug.datastructures import MultiDict

from portal.i18n import refusal_message
from rlm_hotspot.core.cardcode import CARD_NUMBER_MAX_DIGITS, CardNumberError, normalise_card_number
from rlm_hotspot.core.decisions import Refusal

MAX_CARD_TEXT = CARD_NUMBER_MAX_DIGITS * 2  # room for the spaces and dashes people type
MAX_PIN_LENGTH = 32


class FormError(ValueError):
    """What the guest must fix, in their language."""


@dataclass(frozen=True)
class CardAndPin:
    card_number: str  # digits only, check digit verified
    pin: str


def card_and_pin(form: MultiDict[str, str]) -> CardAndPin:
    """Card number and PIN as typed; the check digit is verified here, so a typo never reaches the DB."""
    card_text = form.get("card", "").strip()
    pin = "".join(form.get("pin", "").split()).upper()
    if not card_text:
        raise FormError(gettext("Please type the card number."))
    if len(card_text) > MAX_CARD_TEXT:
        raise FormError(gettext("The card number is too long. Please check it."))
    try:
        number = normalise_card_number(card_text)
    except CardNumberError:
        raise FormError(refusal_message(Refusal.BAD_CARD_NUMBER)) from None
    if not pin:
        raise FormError(gettext("Please type the PIN."))
    if len(pin) > MAX_PIN_LENGTH or not pin.isascii() or not pin.isprintable():
        raise FormError(refusal_message(Refusal.WRONG_PIN))
    return CardAndPin(number, pin)
