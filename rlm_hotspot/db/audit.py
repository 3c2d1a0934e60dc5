"""The audit trail (sql/019_console.sql): append-only rows of who did what, when and from where."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from rlm_hotspot.db.rows import every


def insert(
    db: Session,
    *,
    at: datetime,
    staff_id: int | None,
    staff_name: str,
    action: str,
    subject: str | None,
    detail: dict[str, object],
    client: str,
) -> int:
    return int(
        db.execute(
            text(
                "INSERT INTO audit_trail (at, staff_id, staff_name, action, subject, detail, client) "
                "VALUES (:at, :staff_id, :staff_name, :action, :subject, CAST(:detail AS jsonb), :client) RETURNING id"
            ),
            {
                "at": at,
                "staff_id": staff_id,
                "staff_name": staff_name,
                "action": action,
                "subject": subject,
                "detail": json.dumps(detail, default=str),
                "client": client,
            },
        ).scalar_one()
    )


def transaction_wrote(db: Session) -> bool:
    """PostgreSQL gives a transaction an id at its first write: none yet, nothing written."""
    return bool(db.execute(text("SELECT pg_current_xact_id_if_assigned() IS NOT NULL")).scalar_one())


def rows(
    db: Session, *, since: datetime | None, staff_name: str | None, action: str | None, limit: int
) -> list[dict[str, object]]:
    """Newest first."""
    clauses: list[str] = []
    params: dict[str, object] = {"limit": limit}
    if since is not None:
        clauses.append("at >= :since")
        params["since"] = since
    if staff_name is not None:
        clauses.append("staff_name = :staff_name")
        params["staff_name"] = staff_name
    if action is not None:
        clauses.append("(action = :action OR action LIKE :action || '.%')")
        params["action"] = action
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    result = db.execute(
        text(
            f"SELECT id, at, staff_name, action, subject, detail, client FROM audit_trail {where} "
            "ORDER BY id DESC LIMIT :limit"
        ),
        params,
    )
    return [dict(r._mapping) for r in result]


def failed_logins(db: Session, *, name: str, client: str, since: datetime) -> tuple[int, int]:
    """Failed sign-ins since `since` for this account name, and from this client."""
    row = db.execute(
        text(
            """SELECT (SELECT count(*) FROM audit_trail WHERE action = 'login.failed' AND staff_name = :name
                         AND at >= :since) AS by_name,
                      (SELECT count(*) FROM audit_trail WHERE action = 'login.failed' AND client = :client
                         AND at >= :since) AS by_client"""
        ),
        {"name": name, "client": client, "since": since},
    ).one()
    return int(row.by_name), int(row.by_client)


@dataclass(frozen=True)
class LastExport:
    """The latest export of a batch's PINs: when, by whom, through which door (its audit action)."""

    batch_id: int
    at: datetime
    staff_name: str
    action: str

    @property
    def by_cli(self) -> bool:
        """Exported with hotspotctl (`staff_name` is then the operator's Unix name)."""
        return self.action.startswith("cli.")


def last_exports(db: Session, actions: Sequence[str], batch_id: int | None = None) -> list[LastExport]:
    """The latest row of `actions` per batch (each names its batch as detail's `batch_id`)."""
    only_one = "AND detail->>'batch_id' = CAST(:batch_id AS text)" if batch_id is not None else ""
    query = text(
        f"""SELECT DISTINCT ON (1) CAST(detail->>'batch_id' AS bigint) AS batch_id, at, staff_name, action
            FROM audit_trail WHERE action IN :actions {only_one} ORDER BY 1, id DESC"""
    ).bindparams(bindparam("actions", expanding=True))
    params: dict[str, object] = {"actions": list(actions)}
    if batch_id is not None:
        params["batch_id"] = batch_id
    return every(LastExport, db.execute(query, params))
