"""Server-side prepared statements for the hot paths.

psycopg2 sends every statement as text, so PostgreSQL parses and plans it on every call; for the
login snapshot or the guarded meter write that planning costs several times the execution. A
`Prepared` statement is PREPAREd once per database connection (the pool keeps connections, so once
per process in practice) and then run with EXECUTE, which reuses the plan. Parameters keep their
SQLAlchemy `:name` form; PostgreSQL infers their types from the statement (write a CAST where it
cannot).
"""

from __future__ import annotations

import re

from sqlalchemy import Result, TextClause, text
from sqlalchemy.orm import Session

_PARAMETER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


class Prepared:
    """One statement, prepared on first use on each connection."""

    def __init__(self, name: str, sql: str) -> None:
        self.name = name
        self.parameters: list[str] = list(dict.fromkeys(_PARAMETER.findall(sql)))
        numbered = {parameter: f"${position}" for position, parameter in enumerate(self.parameters, 1)}
        self._prepare = f"PREPARE {name} AS " + _PARAMETER.sub(lambda m: numbered[m.group(1)], sql)
        arguments = ", ".join(f":{parameter}" for parameter in self.parameters)
        self._execute: TextClause = text(f"EXECUTE {name}({arguments})" if self.parameters else f"EXECUTE {name}")

    def __call__(self, session: Session, parameters: dict[str, object]) -> Result:  # type: ignore[type-arg]
        connection = session.connection()
        prepared: set[str] = connection.info.setdefault("prepared_statements", set())
        if self.name not in prepared:
            cursor = connection.connection.driver_connection.cursor()
            try:
                cursor.execute(self._prepare)  # no parameters: the text goes to the server as it is
            finally:
                cursor.close()
            prepared.add(self.name)
        return session.execute(self._execute, {name: parameters[name] for name in self.parameters})
