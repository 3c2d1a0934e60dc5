"""Why a guest is refused, as one closed set of reasons.

Every entry point (RADIUS Reply-Message, portal page, CLI) shows the same reason to people, so the
reasons and their guest-facing sentences live here once. Values are stable lower-case names, fit for
logs, metrics and database columns.
"""

from __future__ import annotations

from enum import StrEnum

# The Reply-Message of a login refused for a fault of ours (the database away), not for the card: RADIUS
# replies cannot know the guest's language, so the portal translates this sentence where it shows it.
SERVICE_UNAVAILABLE = "Service temporarily unavailable. Please try again in a few minutes."


class Refusal(StrEnum):
    """A domain reason to refuse a login or to end a session (never an infrastructure fault)."""

    UNKNOWN_CARD = "unknown_card"
    BAD_CARD_NUMBER = "bad_card_number"
    WRONG_PIN = "wrong_pin"
    BLOCKED = "blocked"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    EXHAUSTED = "exhausted"
    REDEEMED = "redeemed"
    LOCKED_OUT = "locked_out"
    TOO_MANY_SESSIONS = "too_many_sessions"
    WRONG_HOTSPOT = "wrong_hotspot"
    PAP_ONLY = "pap_only"  # CHAP needs the cleartext PIN; a card of a hashed-PIN batch has none

    @property
    def message(self) -> str:
        """A short sentence a guest can act on, for Reply-Message and the portal."""
        return _MESSAGES[self]


_MESSAGES: dict[Refusal, str] = {
    Refusal.UNKNOWN_CARD: "Unknown card number.",
    Refusal.BAD_CARD_NUMBER: "The card number has a typo. Please check it.",
    Refusal.WRONG_PIN: "Wrong PIN.",
    Refusal.BLOCKED: "This card has been blocked.",
    Refusal.NOT_YET_VALID: "This card is not valid yet.",
    Refusal.EXPIRED: "This card has expired.",
    Refusal.EXHAUSTED: "This card has no money left.",
    Refusal.REDEEMED: "This card has already been added to another account.",
    Refusal.LOCKED_OUT: "Too many wrong attempts. Please try again later.",
    Refusal.TOO_MANY_SESSIONS: "This card is already in use on another device.",
    Refusal.WRONG_HOTSPOT: "This card cannot be used at this hotspot.",
    Refusal.PAP_ONLY: "This card can only be used with a plain (PAP) password login.",
}
