"""The login policy an installation's settings give, built here for every entry point."""

from __future__ import annotations

from rlm_hotspot.services.access import Policy
from rlm_hotspot.settings import Settings


def login_policy(settings: Settings) -> Policy:
    return Policy(
        lockout_attempts=settings.lockout_attempts,
        lockout_window_s=settings.lockout_window_s,
        pending_session_ttl_s=settings.pending_session_ttl_s,
    )
