"""Batches of buffered accounting (sql/025): recorded in the transaction that bills them."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

_IMPORT_LOCK = 0x72616469  # 'radi': with the file's hash, one importer per spool file at a time


def billed_up_to(db: Session, spool_file: str) -> int:
    """Where the file's next batch begins: the end of its last committed batch (0: none yet).

    Takes the file's lock until the transaction ends, so two importers never bill one file side by side."""
    db.execute(text("SELECT pg_advisory_xact_lock(:lock, hashtext(:file))"), {"lock": _IMPORT_LOCK, "file": spool_file})
    end = db.execute(
        text("SELECT max(end_byte) FROM radius_batches WHERE spool_file = :file"), {"file": spool_file}
    ).scalar()
    return int(end or 0)


def record_batch(db: Session, spool_file: str, first_byte: int, end_byte: int, packets: int, unbilled: int) -> int:
    """Record a batch as its transaction ends (a second import of the same bytes fails on the unique key), and
    make that commit wait for the disk: the detail file is deleted once its batches are committed."""
    db.execute(text("SET LOCAL synchronous_commit = on"))  # an Interim's write may have set it off
    batch_id = db.execute(
        text(
            "INSERT INTO radius_batches (spool_file, first_byte, end_byte, packets, unbilled, committed_at) "
            "VALUES (:file, :first, :end, :packets, :unbilled, clock_timestamp()) RETURNING id"
        ),
        {"file": spool_file, "first": first_byte, "end": end_byte, "packets": packets, "unbilled": unbilled},
    ).scalar_one()
    return int(batch_id)


def prune(db: Session, host_prefix: str, before: datetime, existing: Collection[str]) -> int:
    """Delete the batches committed `before` of this host's files that are gone (`existing`: the names of its
    files still there, whose batches guard their resumption). Returns how many rows went."""
    result = db.execute(
        text(
            "DELETE FROM radius_batches WHERE left(spool_file, length(:prefix)) = :prefix "
            "AND committed_at < :before AND NOT (spool_file = ANY(:existing))"
        ),
        {"prefix": host_prefix, "before": before, "existing": list(existing)},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
