"""Errors a user can cause; every adapter turns them into one clear line (CLI), a page (portal) or a
Reply-Message (RADIUS)."""

from __future__ import annotations

from rlm_hotspot.core.decisions import Refusal


class ServiceError(ValueError):
    """A request the rules refuse; the message is meant for the person who made it."""


class NotFound(ServiceError):
    """The named card, batch, tariff, hotspot or NAS does not exist."""


class CardRefused(ServiceError):
    """A card cannot be used for this; `refusal` says why in a machine-readable way."""

    def __init__(self, refusal: Refusal, detail: str | None = None) -> None:
        super().__init__(detail or refusal.message)
        self.refusal = refusal
