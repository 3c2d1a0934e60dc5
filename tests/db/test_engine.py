"""A connection goes back to the pool with nothing left open, in either kind of engine."""

from __future__ import annotations

import pytest
from psycopg2.extensions import TRANSACTION_STATUS_IDLE
from sqlalchemy import text

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
