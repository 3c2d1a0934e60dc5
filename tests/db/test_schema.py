"""The migrations and the Python table mirror agree; upgrading twice is a no-op; the ledger is append-only;
the RADIUS module does not start on a database behind the code."""

from __future__ import annotations

import shutil
import types
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from rlm_hotspot.db import migrate
from rlm_hotspot.db.tables import metadata
from rlm_hotspot.devcluster import PrivateCluster
from rlm_hotspot.pins import create_key_file
from rlm_hotspot.radius.adapter import RadiusAdapter, StartupError
from rlm_hotspot.settings import Settings


def test_every_declared_column_exists_in_the_migrated_schema(engine: Engine) -> None:
    inspector = inspect(engine)
    for table in metadata.sorted_tables:
        actual = {c["name"] for c in inspector.get_columns(table.name)}
        declared = {c.name for c in table.columns}
        assert declared == actual, f"{table.name}: declared {declared ^ actual} differ from the migrations"


def test_upgrade_again_applies_nothing(engine: Engine) -> None:
    assert migrate.upgrade(engine) == []
    with engine.connect() as conn:
        assert max(migrate.applied(conn)) == len(migrate.available())


def test_an_edited_applied_migration_is_refused(engine: Engine, tmp_path) -> None:
    for migration in migrate.available():
        (tmp_path / migration.path.name).write_text(migration.path.read_text() + "\n-- edited\n")
    with engine.connect() as conn, pytest.raises(migrate.MigrationError, match="changed after it was applied"):
        migrate.pending(conn, tmp_path)


def test_migration_numbering_gaps_are_refused(tmp_path) -> None:
    (tmp_path / "001_a.sql").write_text("SELECT 1")
    (tmp_path / "003_c.sql").write_text("SELECT 1")
    with pytest.raises(migrate.MigrationError, match="without gaps"):
        migrate.available(tmp_path)


def test_the_radius_module_refuses_a_database_missing_a_migration(pg_cluster: PrivateCluster, tmp_path: Path) -> None:
    """Its virtual server calls SQL functions the migrations add (sql/010): better no start than failing logins."""
    *older, newest = migrate.available()
    for migration in older:
        shutil.copy(migration.path, tmp_path)
    pg_cluster.create_database("hotspot_behind")
    url = pg_cluster.url("hotspot_behind")
    engine = create_engine(url)
    migrate.upgrade(engine, tmp_path)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO installation (currency_code, currency_exponent) VALUES ('EUR', 2)"))
    engine.dispose()
    create_key_file(tmp_path / "pin.keys")
    settings = Settings(database_url=url, pin_key_file=tmp_path / "pin.keys")
    with pytest.raises(StartupError, match=f"lacks {newest.path.name}: run `hotspotctl db upgrade`"):
        RadiusAdapter.start(types.ModuleType("radiusd"), settings)


def test_ledger_rows_cannot_be_updated_or_deleted(db: Session) -> None:
    account = db.execute(
        text("INSERT INTO accounts (balance, created_at, updated_at) VALUES (0, now(), now()) RETURNING id")
    ).scalar_one()
    db.execute(
        text(
            "INSERT INTO ledger (account_id, amount, cause, idempotency_key, created_at) "
            "VALUES (:a, 5, 'adjustment', 'k1', now())"
        ),
        {"a": account},
    )
    for statement in ("UPDATE ledger SET amount = 6", "DELETE FROM ledger"):
        with pytest.raises(DBAPIError, match="append-only"), db.begin_nested():
            db.execute(text(statement))


def test_admin_views_answer(db: Session) -> None:
    for view in ("admin_cards", "admin_sessions", "admin_ledger", "admin_sales"):
        db.execute(text(f"SELECT * FROM {view} LIMIT 1")).all()
