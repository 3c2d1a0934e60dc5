"""Card validity: the one effective deadline, refusals in time, and aware datetimes only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlm_hotspot.core.decisions import Refusal
from rlm_hotspot.core.validity import CardValidity, effective_deadline, seconds_left, validity_refusal

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DAY = 86400
MOSCOW = ZoneInfo("Europe/Moscow")


def validity(
    valid_from: datetime | None = None,
    use_before: datetime | None = None,
    validity_seconds: int | None = None,
    expires_at: datetime | None = None,
) -> CardValidity:
    return CardValidity(valid_from, use_before, validity_seconds, expires_at)


def test_no_limits_means_no_deadline() -> None:
    v = validity()
    assert effective_deadline(v, None, NOW) is None
    assert effective_deadline(v, NOW - timedelta(days=400), NOW) is None
    assert validity_refusal(v, None, NOW) is None


def test_activated_card_deadline_is_the_earlier_of_validity_and_expiry() -> None:
    activated = NOW - timedelta(hours=2)
    v = validity(validity_seconds=DAY, expires_at=NOW + timedelta(days=30))
    assert effective_deadline(v, activated, NOW) == activated + timedelta(days=1)
    v = validity(validity_seconds=DAY, expires_at=NOW + timedelta(hours=1))
    assert effective_deadline(v, activated, NOW) == NOW + timedelta(hours=1)
    v = validity(expires_at=NOW + timedelta(hours=1))
    assert effective_deadline(v, activated, NOW) == NOW + timedelta(hours=1)


def test_unused_card_deadline_is_as_if_activated_now() -> None:
    v = validity(
        use_before=NOW + timedelta(hours=1), validity_seconds=DAY, expires_at=NOW + timedelta(days=30)
    )
    # the activation deadline does not shorten the session that starts now
    assert effective_deadline(v, None, NOW) == NOW + timedelta(days=1)
    assert validity_refusal(v, None, NOW) is None


def test_refusals() -> None:
    v = validity(
        valid_from=NOW,
        use_before=NOW + timedelta(days=10),
        validity_seconds=DAY,
        expires_at=NOW + timedelta(days=30),
    )
    assert validity_refusal(v, None, NOW - timedelta(seconds=1)) is Refusal.NOT_YET_VALID
    assert validity_refusal(v, None, NOW) is None
    # activation deadline: an unused card dies at use_before ...
    assert validity_refusal(v, None, NOW + timedelta(days=10) - timedelta(microseconds=1)) is None
    assert validity_refusal(v, None, NOW + timedelta(days=10)) is Refusal.EXPIRED
    # ... but a card activated before it lives its validity period
    activated = NOW + timedelta(days=9, hours=23)
    assert validity_refusal(v, activated, NOW + timedelta(days=10, hours=12)) is None
    assert validity_refusal(v, activated, activated + timedelta(days=1)) is Refusal.EXPIRED
    # the hard expiry wins over everything
    late = validity(validity_seconds=30 * DAY, expires_at=NOW + timedelta(days=1))
    assert validity_refusal(late, NOW, NOW + timedelta(days=1)) is Refusal.EXPIRED
    assert validity_refusal(late, None, NOW + timedelta(days=1)) is Refusal.EXPIRED
    assert validity_refusal(late, None, NOW + timedelta(hours=23)) is None


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2026, 11, 25, 12, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        validity(valid_from=naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        validity(use_before=naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        validity(expires_at=naive)
    v = validity(validity_seconds=DAY)
    with pytest.raises(ValueError, match="timezone-aware"):
        effective_deadline(v, None, naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        effective_deadline(v, naive, NOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        validity_refusal(v, None, naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        validity_refusal(v, naive, NOW)


def test_validity_seconds_must_be_positive_int() -> None:
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="validity_seconds"):
            validity(validity_seconds=bad)  # type: ignore[arg-type]


def test_local_time_inputs_compare_as_instants() -> None:
    # 15:00 in Moscow is 12:00 UTC: the same instant, whatever zone the caller used
    v = validity(expires_at=datetime(2026, 11, 25, 15, 0, tzinfo=MOSCOW))
    assert validity_refusal(v, None, NOW) is Refusal.EXPIRED
    assert validity_refusal(v, None, NOW - timedelta(seconds=1)) is None
    assert effective_deadline(v, None, NOW) == NOW
    assert effective_deadline(v, None, NOW).tzinfo is UTC  # type: ignore[union-attr]


def test_validity_across_dst_is_exact_elapsed_time() -> None:
    # activated just before Berlin falls back: 24 h of validity are 24 real hours, not a wall-clock day
    activated = datetime(2026, 10, 24, 12, 0, tzinfo=UTC)
    v = validity(validity_seconds=DAY)
    assert effective_deadline(v, activated, activated) == datetime(2026, 10, 25, 12, 0, tzinfo=UTC)


@settings(max_examples=200, deadline=None)
@given(
    validity_seconds=st.none() | st.integers(1, 400 * DAY),
    expires_in=st.none() | st.integers(-10 * DAY, 400 * DAY),
    activated_ago=st.none() | st.integers(0, 400 * DAY),
    step=st.integers(0, 400 * DAY),
)
def test_deadline_properties(
    validity_seconds: int | None, expires_in: int | None, activated_ago: int | None, step: int
) -> None:
    expires_at = None if expires_in is None else NOW + timedelta(seconds=expires_in)
    activated = None if activated_ago is None else NOW - timedelta(seconds=activated_ago)
    v = validity(validity_seconds=validity_seconds, expires_at=expires_at)
    deadline = effective_deadline(v, activated, NOW)
    if deadline is None:
        assert validity_seconds is None and expires_at is None
        assert validity_refusal(v, activated, NOW) is None
        return
    if expires_at is not None:
        assert deadline <= expires_at
    assert (validity_refusal(v, activated, NOW) is Refusal.EXPIRED) == (deadline <= NOW)
    # an activated card's deadline does not move as time passes
    if activated is not None:
        later = NOW + timedelta(seconds=step)
        assert effective_deadline(v, activated, later) == deadline


def test_seconds_left_is_bounded_by_the_deadline_and_the_cap() -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert seconds_left(None, now, 3600) == 3600
    assert seconds_left(now + timedelta(seconds=90.9), now, 3600) == 90
    assert seconds_left(now + timedelta(days=2), now, 3600) == 3600
    assert seconds_left(now - timedelta(seconds=5), now, 3600) == 0
