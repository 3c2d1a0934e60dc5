"""A connection goes back to the pool with nothing left open, in either kind of engine."""

from __future__ import annotations

import pytest
from psycopg2.extensions import TRANSACTION_STATUS_IDLE
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from rlm_hotspot.db.engine import make_engine
from rlm_hotspot.settings import Settings


@pytest.mark.parametrize("autocommit", [False, True], ids=["transactions", "autocommit"])
def test_a_transaction_left_open_is_rolled_back_when_its_connection_returns(
    settings: Settings, autocommit: bool
) -> None:
    engine = make_engine(settings, pool_size=1, autocommit=autocommit)
    try:
        raw = engine.raw_connection()  # a DB-API connection from the pool, as a careless caller holds one
        cursor = raw.cursor()
        cursor.execute("BEGIN" if autocommit else "SELECT 1")
        cursor.execute("CREATE TEMPORARY TABLE left_open (x int)")
        raw.close()  # back to the pool, its transaction still open
        with engine.connect() as connection:
            assert connection.connection.dbapi_connection.info.transaction_status == TRANSACTION_STATUS_IDLE
            assert connection.scalar(text("SELECT to_regclass('pg_temp.left_open')")) is None
    finally:
        engine.dispose()


@pytest.mark.parametrize("autocommit", [False, True], ids=["transactions", "autocommit"])
def test_a_connection_that_meets_a_read_only_server_is_dropped(settings: Settings, autocommit: bool) -> None:
    """A pooled connection whose server refuses writes (a demoted primary) is dropped, not reused: the
    next one connects afresh, where target_session_attrs finds the primary."""
    engine = make_engine(settings, pool_size=1, autocommit=autocommit)
    try:
        with engine.connect() as connection:
            first = connection.scalar(text("SELECT pg_backend_pid()"))
            connection.execute(text("SET default_transaction_read_only = on"))  # what a demoted primary says
            connection.commit()
            with pytest.raises(DBAPIError) as refused:
                connection.execute(text("CREATE TABLE never_made (x int)"))
        assert refused.value.orig.pgcode == "25006"  # type: ignore[union-attr]
        assert refused.value.connection_invalidated
        with engine.connect() as connection:
            assert connection.scalar(text("SELECT pg_backend_pid()")) != first
            assert connection.scalar(text("SHOW default_transaction_read_only")) == "off"
    finally:
        engine.dispose()
