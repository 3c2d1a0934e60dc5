"""Forward-only schema migrations: ``sql/NNN_name.sql`` applied in order, each in its own transaction,
recorded in ``schema_migrations`` with a checksum so an edited, already-applied file is caught."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from sqlalchemy import Connection, Engine, text

from rlm_hotspot.db.engine import driver_cursor

_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
_LOCK_ID = 0x686F7473  # advisory lock: one upgrader at a time


class MigrationError(RuntimeError):
    """The migration files or the database's record of them are inconsistent."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def sql_dir() -> Path:
    """The migrations: package data of rlm_hotspot.db (in a checkout, rlm_hotspot/db/sql links to sql/)."""
    directory = resources.files(__package__) / "sql"
    if not directory.is_dir():
        raise MigrationError(f"migration directory {directory} not found: the rlm_hotspot package is incomplete")
    return Path(str(directory))


def available(directory: Path | None = None) -> list[Migration]:
    found = []
    for path in sorted((directory or sql_dir()).glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNN_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path))
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(f"migration numbers must run 1, 2, 3… without gaps, found {versions}")
    return found


def _ensure_table(conn: Connection) -> None:
    conn.execute(
        text(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
    )


def applied(conn: Connection) -> dict[int, tuple[str, str]]:
    """version → (name, checksum) of what the database has; empty for a blank database."""
    exists = conn.execute(text("SELECT to_regclass('schema_migrations') IS NOT NULL")).scalar_one()
    if not exists:
        return {}
    rows = conn.execute(text("SELECT version, name, checksum FROM schema_migrations ORDER BY version"))
    return {row.version: (row.name, row.checksum) for row in rows}


def pending(conn: Connection, directory: Path | None = None) -> list[Migration]:
    done = applied(conn)
    todo = []
    for migration in available(directory):
        if migration.version in done:
            if done[migration.version][1] != migration.checksum:
                raise MigrationError(
                    f"{migration.path.name} was changed after it was applied; "
                    "migrations are forward-only, add a new file instead"
                )
        else:
            todo.append(migration)
    newest_known = max((m.version for m in available(directory)), default=0)
    if done and max(done) > newest_known:
        raise MigrationError(
            f"the database is at version {max(done)}, newer than this code ({newest_known}); upgrade the code"
        )
    return todo


def upgrade(engine: Engine, directory: Path | None = None) -> list[Migration]:
    """Apply every pending migration; returns what was applied (empty: already up to date)."""
    done: list[Migration] = []
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
        _ensure_table(conn)
        todo = pending(conn, directory)
    for migration in todo:
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
            if migration.version in applied(conn):
                continue
            # the raw cursor runs the whole file as one simple query (functions with $$ bodies included)
            driver_cursor(conn).execute(migration.path.read_text())
            conn.execute(
                text("INSERT INTO schema_migrations (version, name, checksum) VALUES (:v, :n, :c)"),
                {"v": migration.version, "n": migration.name, "c": migration.checksum},
            )
        done.append(migration)
    return done
