"""Prepared statements fail the way SQLAlchemy's own statements do, whichever step meets the fault."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from rlm_hotspot.db.engine import make_engine
from rlm_hotspot.db.prepared import Prepared
from rlm_hotspot.settings import Settings, with_overrides


def test_a_prepare_that_times_out_on_a_lock_raises_sqlalchemys_operational_error(
    engine: Engine, settings: Settings
) -> None:
    """A PREPARE waits for the table's locks as the statement would: its statement timeout is the
    database fault the callers handle (the RADIUS hook answers FAIL), not an unexpected driver error."""
    hot = make_engine(with_overrides(settings, statement_timeout_ms=200), pool_size=1, pre_ping=False)
    statement = Prepared("test_locked_count", "SELECT count(*) AS n FROM sessions WHERE id > :id")
    try:
        with engine.connect() as blocker:
            blocker.execute(text("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE"))
            with hot.connect() as connection, pytest.raises(OperationalError, match="statement timeout"):
                statement.first_row(connection, {"id": 0})
            blocker.rollback()
        with hot.connect() as connection:  # the same pooled connection prepares it once the lock is gone
            assert statement.first_row(connection, {"id": -1}) == {"n": 0}
    finally:
        hot.dispose()
