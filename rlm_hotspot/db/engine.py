"""The one way to get a database connection: an engine per process, bounded statements."""

from __future__ import annotations

import logging
from typing import Any

try:
    from psycopg2.extensions import TRANSACTION_STATUS_IDLE, cursor
except ModuleNotFoundError as missing:  # the driver is the installer's choice (setup.cfg, extra `binary`)
    raise ModuleNotFoundError(
        "rlm_hotspot needs the psycopg2 driver: apt install python3-psycopg2 (and a venv with "
        "--system-site-packages), or pip install 'rlm-hotspot[binary]'"
    ) from missing
from sqlalchemy import Connection, CursorResult, Engine, Result, create_engine, event
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.orm import Session, sessionmaker

from rlm_hotspot.settings import Settings

log = logging.getLogger("rlm_hotspot.db")

# An execution option of the engines `make_engine` makes behind a transaction pooler: `Prepared` runs its
# statement as plain text there (a PREPAREd name lives on one server connection, the next transaction
# may get another).
SERVER_SIDE_PREPARE = "hotspot_server_side_prepare"

READ_ONLY_SQL_TRANSACTION = "25006"  # SQLSTATE: "cannot execute ... in a read-only transaction"

# What runs statements: an ORM Session, or on the hot paths (RADIUS hooks, portal heartbeats) a plain
# Connection in autocommit, whose per-statement cost is about half a Session's.
Executor = Session | Connection


def make_engine(
    settings: Settings,
    *,
    pool_size: int = 5,
    application_name: str = "rlm_hotspot",
    pre_ping: bool = True,
    autocommit: bool = False,
) -> Engine:
    """Create the process's engine; every statement is bounded by the configured timeout.

    `pre_ping` checks a pooled connection before use (one more round trip per unit of work). A hot path
    that answers a failed request with a retry anyway (RADIUS: FAIL, the NAS retransmits) turns it off: a
    broken connection is then noticed by the request that meets it and replaced for the next.

    `autocommit`: an engine whose connections stay in autocommit mode (no BEGIN/COMMIT round trips), for
    hot paths made of single statements; cheaper than `execution_options(isolation_level="AUTOCOMMIT")`,
    which switches a pooled connection on every checkout and back on every checkin.

    Behind a transaction pooler (`settings.transaction_pooling`) a connection is not the server's own:
    nothing session-wide can be set on it, so the statement timeout and UTC come from the role's settings
    (`ALTER ROLE ... SET`, checked on the first connection) and nothing is PREPAREd.
    """
    pooled = settings.transaction_pooling
    session_options = f"-c statement_timeout={settings.statement_timeout_ms} -c timezone=UTC"
    engine = create_engine(
        make_url(settings.database_url),
        pool_size=pool_size,
        max_overflow=2,
        pool_pre_ping=pre_ping,
        pool_reset_on_return=None,  # `_end_an_open_transaction` instead
        isolation_level="AUTOCOMMIT" if autocommit else None,
        connect_args={
            "connect_timeout": settings.connect_timeout_s,
            "application_name": application_name,
            **({} if pooled else {"options": session_options}),
        },
    )
    event.listen(engine, "reset", _end_an_open_transaction)
    event.listen(engine, "handle_error", _read_only_server_is_gone)
    if not pooled:
        return engine
    event.listen(engine, "first_connect", _check_role_settings)
    return engine.execution_options(**{SERVER_SIDE_PREPARE: False})


def _read_only_server_is_gone(context: ExceptionContext) -> None:
    """Treat a write refused as read-only like a lost connection: the server this connection was made to
    is no longer the primary (demoted while the connection lived, or a standby reached without
    target_session_attrs). SQLAlchemy then drops it and the pool's older connections, and the next one
    connects afresh (libpq finds the primary among the hosts) instead of reusing it for every write."""
    if getattr(context.original_exception, "pgcode", None) == READ_ONLY_SQL_TRANSACTION:
        context.is_disconnect = True


def _check_role_settings(dbapi_connection: Any, _record: object) -> None:
    """Say once, at the first connection through a transaction pooler, what the server's defaults lack:
    a statement timeout (a RADIUS hook must not wait on a lock forever) and UTC."""
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SELECT current_user, current_setting('statement_timeout'), current_setting('TimeZone')")
        role, timeout, zone = cursor.fetchone()
    if timeout == "0" or zone not in ("UTC", "Etc/UTC"):
        log.warning(
            "transaction pooling: role %s has statement_timeout=%s, TimeZone=%s; set them on the server, as the "
            "connection cannot: ALTER ROLE %s SET statement_timeout = '3s'; ALTER ROLE %s SET timezone = 'UTC'",
            role, timeout, zone, role, role,
        )  # fmt: skip


def _end_an_open_transaction(dbapi_connection: Any, _record: object, _state: object) -> None:
    """Roll back what a connection returned to the pool left open, and only then.

    The pool's own reset calls rollback() on every return, and psycopg2 lets go of the GIL for it even
    with nothing to roll back (a heartbeat's autocommit connection): one more point where a request
    thread can lose the interpreter to another thread and wait for it. And in autocommit it rolls back
    nothing even when an explicit BEGIN left a transaction open. The status is known without a round trip.
    """
    if dbapi_connection.info.transaction_status == TRANSACTION_STATUS_IDLE:
        return
    if dbapi_connection.autocommit:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("ROLLBACK")
    else:
        dbapi_connection.rollback()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for units of work; the entry point commits (services never do)."""
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


def driver_cursor(connection: Connection) -> cursor:
    """A psycopg2 cursor on the connection's own driver connection, for what SQLAlchemy does not do
    (COPY, a whole migration file as one simple query, the hot paths' lighter fetch)."""
    driver = connection.connection.driver_connection
    if driver is None:
        raise RuntimeError("the database connection was closed")
    opened: cursor = driver.cursor()
    return opened


def rows_changed(result: Result[Any]) -> int:
    """How many rows an INSERT, UPDATE or DELETE changed (SQLAlchemy types `execute` as a plain Result)."""
    assert isinstance(result, CursorResult), "only a DML statement's result has a row count"
    return result.rowcount
