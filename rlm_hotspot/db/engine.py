"""The one way to get a database connection: an engine per process, bounded statements."""

from __future__ import annotations

from typing import Any

try:
    from psycopg2.extensions import TRANSACTION_STATUS_IDLE
except ModuleNotFoundError as missing:  # the driver is the installer's choice (setup.cfg, extra `binary`)
    raise ModuleNotFoundError(
        "rlm_hotspot needs the psycopg2 driver: apt install python3-psycopg2 (and a venv with "
        "--system-site-packages), or pip install 'rlm-hotspot[binary]'"
    ) from missing
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from rlm_hotspot.settings import Settings

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
    """
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
            "options": f"-c statement_timeout={settings.statement_timeout_ms} -c timezone=UTC",
        },
    )
    event.listen(engine, "reset", _end_an_open_transaction)
    return engine


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
