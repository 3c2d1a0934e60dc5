"""Assertions shared by the database tests."""

from __future__ import annotations

from sqlalchemy.orm import Session

from rlm_hotspot.db.ledger import accounts_out_of_balance


def assert_ledger_balanced(session: Session) -> None:
    """The invariant: every account's cached balance equals the sum of its ledger rows."""
    broken = accounts_out_of_balance(session)
    assert broken == [], f"accounts whose balance != sum(ledger): {broken}"
