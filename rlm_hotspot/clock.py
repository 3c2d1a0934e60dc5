"""The wall clock, read by the entry points only: they pass `now` to the services (the core and the
services read no clock, so tests choose the time)."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)
