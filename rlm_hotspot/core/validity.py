"""Card validity in time: when a card may be used at all, independent of its money.

A card carries up to four limits (all instants are timezone-aware; naive datetimes are refused with
``ValueError`` because a naive time is how "activation off by one hour" bugs happen):

* ``valid_from`` — not usable before this instant (cards printed ahead of a sale);
* ``use_before`` — the activation deadline: the card must be *first used* before this instant;
* ``validity_seconds`` — how long the card lives once first used ("24 hours from first login");
* ``expires_at`` — a hard expiry, whatever else.

Services reduce these to **one effective deadline** (``effective_deadline``): the instant after which
the card is dead. It bounds RADIUS Session-Timeout and it is what the portal shows the guest, in local
time. For a card not yet activated it is the deadline the card *would* get if activated now, i.e. the
deadline of the session that is about to start; the activation deadline (``use_before``) does not
shorten that session — it only decides whether activation is still allowed, which
``validity_refusal`` enforces.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from rlm_hotspot.core.decisions import Refusal


def require_aware(value: datetime, name: str) -> datetime:
    """Refuse naive datetimes: every instant in billing must say which time zone it is in."""
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {value.isoformat()}")
    return value


@dataclass(frozen=True)
class CardValidity:
    """The time limits of one card (see the module docstring); ``None`` means "no such limit"."""

    valid_from: datetime | None
    use_before: datetime | None
    validity_seconds: int | None
    expires_at: datetime | None

    def __post_init__(self) -> None:
        for name in ("valid_from", "use_before", "expires_at"):
            value = getattr(self, name)
            if value is not None:
                require_aware(value, name)
        seconds = self.validity_seconds
        if seconds is not None and (not isinstance(seconds, int) or isinstance(seconds, bool) or seconds <= 0):
            raise ValueError(f"validity_seconds must be a positive integer, got {seconds!r}")


def effective_deadline(v: CardValidity, activated_at: datetime | None, now: datetime) -> datetime | None:
    """The one instant after which the card is unusable (None = never).

    Activated card: min(expires_at, activated_at + validity). Not yet activated: as if activated at
    ``now`` — min(expires_at, now + validity). Returned in UTC.
    """
    require_aware(now, "now")
    start = now if activated_at is None else require_aware(activated_at, "activated_at")
    candidates: list[datetime] = []
    if v.expires_at is not None:
        candidates.append(v.expires_at)
    if v.validity_seconds is not None:
        candidates.append(start + timedelta(seconds=v.validity_seconds))
    return min(candidates).astimezone(UTC) if candidates else None


def validity_refusal(v: CardValidity, activated_at: datetime | None, now: datetime) -> Refusal | None:
    """Why the card cannot be used at ``now`` because of time, or None when time allows it."""
    require_aware(now, "now")
    if v.valid_from is not None and now < v.valid_from:
        return Refusal.NOT_YET_VALID
    if activated_at is None and v.use_before is not None and now >= v.use_before:
        return Refusal.EXPIRED
    deadline = effective_deadline(v, activated_at, now)
    if deadline is not None and now >= deadline:
        return Refusal.EXPIRED
    return None


def seconds_left(deadline: datetime | None, now: datetime, cap: int) -> int:
    """Whole seconds from `now` to the deadline, at most `cap` (no deadline: `cap`); never negative.

    Bounds what a balance may buy: a Session-Timeout or a "time left" never runs past the card's deadline.
    """
    if deadline is None:
        return cap
    return max(0, min(cap, (require_aware(deadline, "deadline") - require_aware(now, "now")) // timedelta(seconds=1)))
