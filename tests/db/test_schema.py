"""The migrations and the Python table mirror agree; upgrading twice is a no-op; the ledger is append-only;
the RADIUS module does not start on a database behind the code; a tariff keeps its prices across sql/013."""

from __future__ import annotations

import shutil
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from devtools.cluster import PrivateCluster
from rlm_hotspot.core.tariff import Band, Meter, Tariff, advance_time, band_at, charged
from rlm_hotspot.db import migrate
from rlm_hotspot.db.tables import metadata
from rlm_hotspot.pins import create_key_file
from rlm_hotspot.radius.adapter import RadiusAdapter, StartupError
from rlm_hotspot.services import catalog
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


def prices_before_013(tariff: Tariff, minute: int) -> tuple[int, int]:
    """The rule sql/013 replaced: the base prices until the day's first band, the last band until midnight."""
    prices = (tariff.time_price, tariff.traffic_price)
    for band in tariff.bands:
        if band.start_minute <= minute:
            prices = (band.time_price, band.traffic_price)
    return prices


def prices_now(tariff: Tariff, minute: int) -> tuple[int, int]:
    band = band_at(tariff, UTC, datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minute))
    return (band.time_price, band.traffic_price)


def test_a_tariff_made_before_013_keeps_its_prices(pg_cluster: PrivateCluster, tmp_path: Path) -> None:
    for migration in migrate.available():
        if migration.version < 13:
            shutil.copy(migration.path, tmp_path)
    pg_cluster.create_database("hotspot_before_013")
    engine = create_engine(pg_cluster.url("hotspot_before_013"))
    migrate.upgrade(engine, tmp_path)
    specs = [
        catalog.TariffSpec("night-till-midnight", 120, 3600, 60, 2, bands=(Band(420, 120, 2), Band(1320, 60, 1))),
        catalog.TariffSpec("one-band", 120, 3600, 60, 2, bands=(Band(1320, 60, 1),)),
        catalog.TariffSpec("from-midnight", 120, 3600, 60, 2, bands=(Band(0, 60, 1), Band(420, 120, 2))),
        catalog.TariffSpec("flat", 120, 3600, 60, 2),
    ]
    with Session(engine) as db:
        for spec in specs:
            catalog.add_tariff(db, spec)
        db.commit()
        before = {s.name: [prices_before_013(catalog.core_tariff(s), m) for m in range(1440)] for s in specs}

    applied = [m.version for m in migrate.upgrade(engine)]
    assert applied == list(range(13, len(migrate.available()) + 1))  # 013 and whatever came after it

    with Session(engine) as db:
        stored = {s.name: catalog.get_tariff(db, s.name).tariff for s in specs}
        for name, tariff in stored.items():
            assert [prices_now(tariff, m) for m in range(1440)] == before[name], name
        assert stored["night-till-midnight"].bands == (Band(0, 120, 2), Band(420, 120, 2), Band(1320, 60, 1))
        assert stored["from-midnight"].bands == specs[2].bands  # it said what happens at 00:00 already
        assert stored["flat"].bands == ()
        # 23:30-01:30 in Moscow: 30 min at 0.60 and 90 min at the base 1.20, as before the upgrade
        late = datetime(2026, 11, 25, 20, 30, tzinfo=UTC)
        meter = advance_time(stored["night-till-midnight"], ZoneInfo("Europe/Moscow"), late, Meter(), 7200)
        assert charged(meter, stored["night-till-midnight"]) == 30 + 180
        assert db.execute(text("SELECT count(*) FROM tariff_bands")).scalar_one() == 2 + 1 + 1 + 2 + 1
    engine.dispose()
