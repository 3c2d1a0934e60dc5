"""The one way to get a database connection: an engine per process, bounded statements."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from rlm_hotspot.settings import Settings


def make_engine(settings: Settings, *, pool_size: int = 5, application_name: str = "rlm_hotspot") -> Engine:
    """Create the process's engine; every statement is bounded by the configured timeout."""
    return create_engine(
        make_url(settings.database_url),
        pool_size=pool_size,
        max_overflow=2,
        pool_pre_ping=True,
        connect_args={
            "connect_timeout": settings.connect_timeout_s,
            "application_name": application_name,
            "options": f"-c statement_timeout={settings.statement_timeout_ms} -c timezone=UTC",
        },
    )


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for units of work; the entry point commits (services never do)."""
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


def commit_without_waiting_for_disk(session: Session) -> None:
    """Let this transaction's COMMIT return before its WAL reaches disk (it stays atomic and ordered).

    A crash of PostgreSQL may lose the last fraction of a second of such commits, so use it only for
    writes a later message restates (RADIUS Interim-Updates carry cumulative counters).
    """
    session.execute(text("SET LOCAL synchronous_commit = off"))
