"""What a transaction pooler changes for a node, through a real pgbouncer (tests/multinode/pgbouncer.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from rlm_hotspot.db.engine import make_engine
from rlm_hotspot.db.prepared import Prepared
from rlm_hotspot.settings import Settings
from tests.multinode.conftest import Route

pytestmark = pytest.mark.parametrize("route", ["pgbouncer"], indirect=True)

ECHO = Prepared("hs_test_echo", "SELECT CAST(:value AS int) + 1 AS next, current_setting('statement_timeout') AS t")


def settings_on(route: Route, database_url: str, key_file: Path, *, pooling: bool) -> Settings:
    return Settings(database_url=route.url(database_url), pin_key_file=key_file, transaction_pooling=pooling)


def test_through_pgbouncer_statements_run_unprepared_under_the_roles_timeout(
    route: Route, database_url: str, key_file: Path
) -> None:
    engine = make_engine(settings_on(route, database_url, key_file, pooling=True), pool_size=3, autocommit=True)
    try:
        for value in range(30):  # many transactions, on whichever server connection pgbouncer gives
            with engine.connect() as conn:
                assert ECHO.first_row(conn, {"value": value}) == {"next": value + 1, "t": "3s"}
                assert ECHO(conn, {"value": value}).one() == (value + 1, "3s")
                assert conn.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar_one() == 0
    finally:
        engine.dispose()


def test_a_pooler_refuses_session_options_and_a_role_without_a_timeout_is_named(
    route: Route, database_url: str, key_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    unaware = make_engine(settings_on(route, database_url, key_file, pooling=False))
    with pytest.raises(OperationalError, match="unsupported startup parameter: options"):
        unaware.connect().close()
    unaware.dispose()
    as_postgres = Route(route.address, "postgres")  # a role with the server's defaults: no timeout
    engine = make_engine(settings_on(as_postgres, database_url, key_file, pooling=True))
    with caplog.at_level(logging.WARNING, logger="rlm_hotspot.db"), engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    engine.dispose()
    assert "role postgres has statement_timeout=0" in caplog.text
    assert "ALTER ROLE postgres SET statement_timeout" in caplog.text
