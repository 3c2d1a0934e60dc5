"""The fast tier, `pytest -m "not db and not e2e"`, must run on a machine without PostgreSQL: a test that
reaches the cluster without its `db` mark would start one (or fail where none is installed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent


def setup_plan(marks: str, path: Path = TESTS) -> str:
    """pytest's plan of the fixtures it would set up for the tests under `path` that `marks` selects (nothing
    is run)."""
    command = [sys.executable, "-m", "pytest", "-m", marks, "--setup-plan", "-q", "-p", "no:cacheprovider", str(path)]
    plan = subprocess.run(command, check=False, capture_output=True, text=True, cwd=TESTS.parent)
    assert plan.returncode == 0, plan.stdout[-3000:] + plan.stderr[-3000:]
    return plan.stdout


def test_the_fast_tier_plans_no_postgresql_cluster() -> None:
    fast = setup_plan("not db and not e2e")
    assert "tests/unit/test_core_money.py" in fast  # the plan lists the tests it selected
    assert "pg_cluster" not in fast
    # and the check is not vacuous: the tier that needs the cluster does start it
    assert "SETUP    S pg_cluster" in setup_plan("db", TESTS / "db" / "test_engine.py")
