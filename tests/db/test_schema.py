"""The migrations and the Python table mirror agree; upgrading twice is a no-op; the ledger is append-only;
the RADIUS module does not start on a database behind the code; a tariff keeps its prices across sql/013;
the admin views show what a small world holds."""

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
from rlm_hotspot.pins import PinVault, create_key_file
from rlm_hotspot.radius.adapter import RadiusAdapter, StartupError
from rlm_hotspot.services import cards, catalog, flows
from rlm_hotspot.services.flows import Direction, FlowBatch, ImportPolicy, TrafficCount, line_rate_bound
from rlm_hotspot.settings import Settings
from tests.conftest import NOW
from tests.db.test_flow_world import HOTSPOT, MB, flow_world, open_session, price


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


def view_rows(db: Session, view: str, columns: str, order: str = "id") -> list[tuple[object, ...]]:
    return [tuple(row) for row in db.execute(text(f"SELECT {columns} FROM {view} ORDER BY {order}"))]


def test_the_admin_views_show_a_small_world(db: Session, vault: PinVault) -> None:
    """The views an operator queries with psql (docs/netflow.md, docs/billing.md): one guest on a NetFlow
    hotspot whose line carries 63 MB a minute is reported 1 GB, a stranger's 5 MB has no session, one card
    is blocked."""
    numbers = flow_world(db, vault, night_band=False)
    guest = open_session(db, numbers[0], "10.1.0.11")
    cards.set_blocked(db, blocked=True, number=numbers[1])
    db.execute(text("UPDATE hotspots SET max_rate_kbps = 8000 WHERE name = :name"), {"name": HOTSPOT})
    counts = [TrafficCount("10.1.0.11", NOW, 10**9, False), TrafficCount("10.9.9.9", NOW, 5 * MB, False)]
    batch = FlowBatch("down#1", Direction.DOWNLOAD, NOW, counts)
    flows.import_batches(db, HOTSPOT, [batch], NOW + timedelta(minutes=2), ImportPolicy(60, 180))
    bound = line_rate_bound(8000, 60)
    billed = price(bound)

    views = {name for (name,) in db.execute(text("SELECT table_name FROM information_schema.views"))}
    assert {view for view in views if view.startswith("admin_")} == {
        "admin_cards",
        "admin_sessions",
        "admin_ledger",
        "admin_sales",
        "admin_flow_batches",
        "admin_flow_imports",
        "admin_unattributed_traffic",
        "admin_quarantine",
    }  # a new view gets its assertion below
    remaining = 500 - billed
    assert {number: rest for number, *rest in view_rows(db, "admin_cards", "number, hotspot, state, balance")} == {
        numbers[0]: [HOTSPOT, "active", remaining],
        numbers[1]: [HOTSPOT, "blocked", None],
        **{number: [HOTSPOT, "new", None] for number in numbers[2:]},
    }
    session_columns = "status, card_number, hotspot, nas, source, framed_ip, charged, account_id"
    assert view_rows(db, "admin_sessions", session_columns) == [
        ("open", numbers[0], HOTSPOT, None, "portal", "10.1.0.11", billed, guest.account_id)
    ]
    ledger_columns = "account_id, account_card, card_number, cause, amount, bytes, balance_after"
    assert view_rows(db, "admin_ledger", ledger_columns) == [
        (guest.account_id, numbers[0], numbers[0], "card_load", 500, None, 500),
        (guest.account_id, numbers[0], numbers[0], "traffic", -billed, bound, remaining),
    ]
    assert view_rows(
        db, "admin_sales", "card_count, face_value, cards_used, cards_redeemed, cards_blocked, value_sold", "batch_id"
    ) == [(6, 500, 1, 0, 1, 500)]
    batch_figures = "hotspot, records, sessions, billable_bytes, unattributed_bytes, debited"
    assert view_rows(db, "admin_flow_batches", f"name, direction, {batch_figures}") == [
        ("down#1", "download", HOTSPOT, 2, 1, bound, 5 * MB, billed)
    ]
    assert view_rows(db, "admin_flow_imports", f"batches, batch_count, {batch_figures}", "import_id") == [
        (["down#1"], 1, HOTSPOT, 2, 1, bound, 5 * MB, billed)
    ]
    unattributed_columns = "hotspot, ip, bin_start, direction, free, bytes, batch"
    assert view_rows(db, "admin_unattributed_traffic", unattributed_columns, "ip") == [
        (HOTSPOT, "10.9.9.9", NOW, "download", False, 5 * MB, "down#1")
    ]
    assert view_rows(db, "admin_quarantine", "source, reason, held, reported, hotspot, card_number, state") == [
        ("netflow", "bytes-beyond-line-rate", 10**9 - bound, 10**9, HOTSPOT, numbers[0], "held")
    ]


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
