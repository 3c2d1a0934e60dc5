"""Server-side prepared statements for the hot paths.

psycopg2 sends every statement as text, so PostgreSQL parses and plans it on every call; for the
login snapshot or the guarded meter write that planning costs several times the execution. A
`Prepared` statement is PREPAREd once per database connection (the pool keeps connections, so once
per process in practice) and then run with EXECUTE, which reuses the plan. Parameters keep their
SQLAlchemy `:name` form; PostgreSQL infers their types from the statement (write a CAST where it
cannot). Behind a transaction pooler (engine option SERVER_SIDE_PREPARE off) the statement is sent as
plain text every time instead: the same result, planned on every call.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy import Connection, Result, TextClause, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from rlm_hotspot.db.engine import SERVER_SIDE_PREPARE, Executor, driver_cursor

_PARAMETER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
T = TypeVar("T")


class Prepared:
    """One statement, prepared on first use on each connection."""

    def __init__(self, name: str, sql: str) -> None:
        self.name = name
        self.parameters: list[str] = list(dict.fromkeys(_PARAMETER.findall(sql)))
        numbered = {parameter: f"${position}" for position, parameter in enumerate(self.parameters, 1)}
        self._prepare = f"PREPARE {name} AS " + _PARAMETER.sub(lambda m: numbered[m.group(1)], sql)
        arguments = ", ".join(f":{parameter}" for parameter in self.parameters)
        self._execute: TextClause = text(f"EXECUTE {name}({arguments})" if self.parameters else f"EXECUTE {name}")
        pyformat = ", ".join(f"%({parameter})s" for parameter in self.parameters)
        self._execute_pyformat = f"EXECUTE {name}({pyformat})" if self.parameters else f"EXECUTE {name}"
        self._plain: TextClause = text(sql)
        self._plain_pyformat = _PARAMETER.sub(lambda m: f"%({m.group(1)})s", sql.replace("%", "%%"))

    def __call__(self, db: Executor, parameters: Mapping[str, object]) -> Result[Any]:
        """Run on an ORM session's connection, or on a Connection (the RADIUS hot path, lighter still)."""
        connection = db.connection() if isinstance(db, Session) else db
        arguments = {name: parameters[name] for name in self.parameters}
        if not self._prepare_on(connection):
            return connection.execute(self._plain, arguments)
        return connection.execute(self._execute, arguments)

    def first_row(self, db: Executor, parameters: Mapping[str, object]) -> dict[str, Any] | None:
        """The first row as a dict, straight from the driver's cursor.

        For the hot paths (RADIUS hooks run one at a time; the portal heartbeat): SQLAlchemy's result
        machinery costs about as much as a short statement's round trip. Errors are raised as
        SQLAlchemy's (OperationalError for a lost server, which also drops the connection from the
        pool), exactly as `__call__` would raise them.
        """
        connection = db.connection() if isinstance(db, Session) else db
        statement = self._execute_pyformat if self._prepare_on(connection) else self._plain_pyformat
        arguments = {name: parameters[name] for name in self.parameters}

        def fetch(cursor: Any) -> dict[str, Any] | None:
            cursor.execute(statement, arguments)
            row = cursor.fetchone()
            return None if row is None else dict(zip([column[0] for column in cursor.description], row, strict=True))

        return _on_driver_cursor(connection, statement, arguments, fetch)

    def _prepare_on(self, connection: Connection) -> bool:
        """PREPARE the statement on this connection unless it is there already; False: never on this engine."""
        if not connection.get_execution_options().get(SERVER_SIDE_PREPARE, True):
            return False
        prepared: set[str] = connection.info.setdefault("prepared_statements", set())
        if self.name not in prepared:
            # no parameters: the text goes to the server as it is
            _on_driver_cursor(connection, self._prepare, None, lambda cursor: cursor.execute(self._prepare))
            prepared.add(self.name)
        return True


def _on_driver_cursor(
    connection: Connection, statement: str, arguments: dict[str, Any] | None, work: Callable[[Any], T]
) -> T:
    """Run `work` on a cursor of the driver's own connection. Its errors are raised as SQLAlchemy's, as
    `connection.execute` would raise them: OperationalError for a lost server or a statement timeout (a
    PREPARE waits for the table locks too), and a lost connection leaves the pool."""
    driver = connection.connection.dbapi_connection
    dialect = connection.dialect
    cursor = driver_cursor(connection)
    try:
        return work(cursor)
    except dialect.loaded_dbapi.Error as exc:
        # psycopg2's stub cursor lacks the DB-API protocol's catch-all __getattr__
        lost = dialect.is_disconnect(exc, driver, cursor)  # type: ignore[arg-type]
        if lost:
            connection.invalidate(exc)
        raise DBAPIError.instance(
            statement,
            arguments,
            exc,
            dialect.loaded_dbapi.Error,
            connection_invalidated=lost,
            dialect=dialect,
        ) from exc
    finally:
        cursor.close()
