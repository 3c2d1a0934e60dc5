"""The heartbeat rule (rlm_hotspot/core/heartbeat.py): when a session whose page must stay open ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rlm_hotspot.core.heartbeat import CLOSED_PAGE_SLACK_S, Deadline, HeartbeatRule, Silence, heartbeat_deadline

T = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
RULE = HeartbeatRule("on", timeout_s=90, hidden_grace_s=600)


def s(seconds: float) -> datetime:
    return T + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("rule", "state", "state_at", "expected"),
    [
        (RULE, None, None, Deadline(s(90), Silence.STOPPED)),
        (HeartbeatRule("grace", 90, 600), None, None, Deadline(s(90), Silence.STOPPED)),
        (RULE, "hidden", s(-5), Deadline(s(600), Silence.HIDDEN)),  # from the last sign of life
        (HeartbeatRule("on", 90, 30), "hidden", s(0), Deadline(s(90), Silence.HIDDEN)),  # never below the timeout
        (RULE, "closed", s(3), Deadline(s(3 + CLOSED_PAGE_SLACK_S), Silence.CLOSED)),
        (RULE, "closed", s(0), Deadline(s(CLOSED_PAGE_SLACK_S), Silence.CLOSED)),  # said with its sign of life
        (RULE, "closed", s(-1), Deadline(s(90), Silence.STOPPED)),  # a sign of life came after: a reload
        (HeartbeatRule("off", 90, 600), "closed", s(3), None),
    ],
)
def test_the_deadline_follows_what_the_page_said(
    rule: HeartbeatRule, state: str | None, state_at: datetime | None, expected: Deadline | None
) -> None:
    assert heartbeat_deadline(rule, T, state, state_at) == expected
