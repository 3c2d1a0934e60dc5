"""The heartbeat rule: when a session whose guest must keep the status page open has ended.

A sign of life (a status page view, its heartbeat, under ``grace`` an RFC 8908 poll) keeps the session
for ``heartbeat_timeout`` seconds. The page also says what happens to it (Page Lifecycle): a page sent
to the background (``hidden``: a phone freezes it, its heartbeats stop) keeps the session for the longer
``hidden_grace`` after its last sign of life; a page that was closed ends the session
``CLOSED_PAGE_SLACK_S`` after it said so, unless a sign of life came after that (a reload, another tab).
None of this decides money: the time until the cut is billed, because the gate stayed open
(docs/billing.md). The worker's SQL (rlm_hotspot/db/enforcement.py) states the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

# A reload or a move within the portal says "closed" and then loads the next page: the next page's
# sign of life must be able to arrive first (a slow phone network), so a closed page ends a little later.
CLOSED_PAGE_SLACK_S = 10


class PageState(StrEnum):
    """What the status page last said about itself (None: visible, or nothing said)."""

    HIDDEN = "hidden"
    CLOSED = "closed"


class Silence(StrEnum):
    """Why the heartbeat rule ended a session (the worker's cut reason)."""

    STOPPED = "heartbeat"  # a visible page, or one that never said anything, went quiet
    HIDDEN = "page_hidden"  # the page stayed in the background longer than the hidden grace
    CLOSED = "page_closed"  # the page was closed


TERMINATE_CAUSES = {
    Silence.STOPPED: "Heartbeat-Timeout",
    Silence.HIDDEN: "Page-Hidden",
    Silence.CLOSED: "Page-Closed",
}


@dataclass(frozen=True)
class HeartbeatRule:
    """A hotspot's setting: `mode` on | off | grace, and its two allowances in seconds."""

    mode: str
    timeout_s: int
    hidden_grace_s: int


@dataclass(frozen=True)
class Deadline:
    """When the session ends unless another sign of life comes, and why it would end."""

    at: datetime
    silence: Silence


def heartbeat_deadline(
    rule: HeartbeatRule, last_sign_of_life: datetime, page_state: str | None, page_state_at: datetime | None
) -> Deadline | None:
    """The session's deadline under the heartbeat rule; None when the hotspot requires no heartbeat.

    A session has ended when `now` is past `at` (strictly).
    """
    if rule.mode == "off":
        return None
    if page_state == PageState.CLOSED and page_state_at is not None and page_state_at >= last_sign_of_life:
        return Deadline(page_state_at + timedelta(seconds=CLOSED_PAGE_SLACK_S), Silence.CLOSED)
    if page_state == PageState.HIDDEN:
        grace = max(rule.timeout_s, rule.hidden_grace_s)
        return Deadline(last_sign_of_life + timedelta(seconds=grace), Silence.HIDDEN)
    return Deadline(last_sign_of_life + timedelta(seconds=rule.timeout_s), Silence.STOPPED)
