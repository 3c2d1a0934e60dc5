"""Poison in the spool never stops or stalls billing: the import loop against the real database."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from flowimport.importer import DATABASE, MAX_TRIES, Importer, ImporterSettings, read_failing
from rlm_hotspot.cli.main import cli
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services import flows as flow_service
from rlm_hotspot.services.flows import ImportPolicy, line_rate_bound
from tests.conftest import NOW
from tests.db.helpers import assert_ledger_balanced
from tests.db.test_flow_world import HOTSPOT, MB, flow_world, open_session, price, traffic_debited

BOUND = line_rate_bound(1_000_000, 60)


def spool_file(
    spool: Path, direction: str, bin_start: datetime, counts: list[tuple[str, int]], suffix: str = ""
) -> Path:
    """One closed block as nfacctd's print plugin writes it, for the bin named."""
    field = "ip_dst" if direction == "down" else "ip_src"
    stamp = str(int(bin_start.timestamp()))
    lines = [{"event_type": "purge_init", "writer_id": f"{direction}/1"}]
    lines += [
        {
            "event_type": "purge",
            "tag": 2,
            field: ip,
            "stamp_inserted": stamp,
            "stamp_updated": stamp,
            "packets": 1,
            "bytes": size,
        }
        for ip, size in counts
    ]
    lines.append({"event_type": "purge_close", "writer_id": f"{direction}/1", "purged_entries": len(counts)})
    path = spool / f"{direction}-{bin_start:%Y%m%d-%H%M%S}{suffix}.json"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    written = min(bin_start, NOW + timedelta(hours=1)) + timedelta(seconds=61)
    os.utime(path, (written.timestamp(), written.timestamp()))
    return path


@pytest.fixture
def guests(committed: Engine, vault: PinVault) -> list[int]:
    """Guests on 10.1.0.11 and .12 (committed); their account ids."""
    with Session(committed) as session, session.begin():
        numbers = flow_world(session, vault, night_band=False)
        return [open_session(session, numbers[i], f"10.1.0.1{i + 1}").account_id for i in range(2)]


def importer(engine: Engine, spool: Path, now: datetime) -> Importer:
    settings = ImporterSettings(
        hotspot=HOTSPOT, spool=spool, policy=ImportPolicy(60, 180), settle=timedelta(seconds=10)
    )
    return Importer(settings, sessionmaker(engine), clock=lambda: now)


def debited(engine: Engine, accounts: list[int]) -> list[int]:
    with Session(engine) as session:
        return [traffic_debited(session, account) for account in accounts]


def quarantined(engine: Engine) -> list[tuple[str, int, str]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT reason, held, identity FROM quarantine ORDER BY id"))
        return [(r.reason, int(r.held), r.identity) for r in rows]


def test_a_record_beyond_bigint_is_held_and_the_files_after_it_are_billed(
    committed: Engine, guests: list[int], tmp_path: Path
) -> None:
    spool_file(tmp_path, "down", NOW, [("10.1.0.11", 10**20), ("10.1.0.12", MB)])
    spool_file(tmp_path, "up", NOW, [("10.1.0.11", 2 * MB)])
    spool_file(tmp_path, "down", NOW + timedelta(minutes=1), [("10.1.0.12", 3 * MB)])
    loop = importer(committed, tmp_path, NOW + timedelta(minutes=5))
    report = loop.run_cycle()
    assert (report.errors, report.files_done) == (0, 3)
    assert debited(committed, guests) == [price(BOUND + 2 * MB), price(4 * MB)]
    ((reason, held, identity),) = quarantined(committed)
    assert (reason, held) == ("counter-out-of-range", 10**20 - BOUND)
    assert identity.startswith("down-20261125-120000.json#down/1#") and "ip 10.1.0.11 bin 2026-11-25T12:00" in identity
    labels = {"hotspot": HOTSPOT, "reason": "counter-out-of-range"}
    assert loop.metrics.registry.get_sample_value("hotspot_flows_held_counts_total", labels) == 1
    assert loop.metrics.registry.get_sample_value("hotspot_flows_held_bytes_total", labels) == float(10**20 - BOUND)
    # The loop keeps up: a file arriving later is billed at the next cycle.
    spool_file(tmp_path, "down", NOW + timedelta(minutes=2), [("10.1.0.11", MB)])
    assert importer(committed, tmp_path, NOW + timedelta(minutes=6)).run_cycle().files_done == 1
    assert debited(committed, guests) == [price(BOUND + 3 * MB), price(4 * MB)]
    # Re-delivered: held once, billed once.
    (tmp_path / "done" / "down-20261125-120000.json").rename(tmp_path / "down-20261125-120000.json")
    assert importer(committed, tmp_path, NOW + timedelta(minutes=7)).run_cycle().replayed == 1
    assert len(quarantined(committed)) == 1
    assert debited(committed, guests) == [price(BOUND + 3 * MB), price(4 * MB)]
    with Session(committed) as session:
        assert_ledger_balanced(session)


def test_a_file_named_for_an_absurd_bin_is_moved_aside_and_the_rest_billed(
    committed: Engine, guests: list[int], tmp_path: Path
) -> None:
    spool_file(tmp_path, "down", datetime(9999, 12, 31, 23, 59, tzinfo=UTC), [("10.1.0.11", MB)])  # overflowed
    spool_file(tmp_path, "down", datetime(2100, 1, 1, tzinfo=UTC), [("10.1.0.11", MB)])  # billed the open session
    spool_file(tmp_path, "down", NOW, [("10.1.0.12", MB)])
    report = importer(committed, tmp_path, NOW + timedelta(minutes=5)).run_cycle()
    assert (report.files_done, report.errors) == (1, 2)
    assert debited(committed, guests) == [0, price(MB)]
    assert sorted(p.name for p in (tmp_path / "failed").iterdir()) == [
        "down-21000101-000000.json",
        "down-99991231-235900.json",
    ]


def flows_status(database_url: str, key_file: Path, spool: Path) -> dict[str, object]:
    env = {"HOTSPOT_DATABASE_URL": database_url, "HOTSPOT_PIN_KEY_FILE": str(key_file), "HOTSPOT_CONFIG": os.devnull}
    arguments = ["flows", "status", "--hotspot", HOTSPOT, "--spool", str(spool), "--format", "json"]
    result = CliRunner().invoke(cli, arguments, env=env)
    assert result.exit_code == 0, result.output
    return {row["field"]: row["value"] for row in json.loads(result.output)}


def test_a_file_that_keeps_failing_is_moved_aside_and_never_stalls_the_others(
    committed: Engine,
    guests: list[int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    database_url: str,
    key_file: Path,
) -> None:
    """Whatever makes a file fail (here: a fault injected in the import of its batch), later files are
    billed in the same cycle, and after MAX_TRIES cycles the file goes to failed/; `flows status` says so."""
    poison = spool_file(tmp_path, "down", NOW, [("10.1.0.11", MB)])
    import_batches = flow_service.import_batches

    def fails_on_the_poison(session, hotspot, batches, now, policy):  # type: ignore[no-untyped-def]
        if any(batch.name.startswith(poison.name) for batch in batches):
            raise ZeroDivisionError("injected: a bug this file triggers")
        return import_batches(session, hotspot, batches, now, policy)

    monkeypatch.setattr("flowimport.importer.import_batches", fails_on_the_poison)
    clock = [NOW]
    loop = Importer(
        ImporterSettings(hotspot=HOTSPOT, spool=tmp_path, policy=ImportPolicy(60, 180)),
        sessionmaker(committed),
        clock=lambda: clock[0],
    )
    for minute in range(1, MAX_TRIES + 1):
        spool_file(tmp_path, "down", NOW + timedelta(minutes=minute), [("10.1.0.12", MB)])
        clock[0] = NOW + timedelta(minutes=minute + 4)
        report = loop.run_cycle()
        assert report.files_done == 1  # the good file of that minute
        assert debited(committed, guests) == [0, price(minute * MB)]
        if minute < MAX_TRIES:
            (failing,) = read_failing(tmp_path)
            assert (failing.what, failing.tries) == (poison.name, minute)
            assert failing.since == (NOW + timedelta(minutes=5)).isoformat()
            assert "ZeroDivisionError: injected" in failing.reason
            status = flows_status(database_url, key_file, tmp_path)
            assert status["failing"] == (f"{poison.name}: {failing.reason} (since {failing.since}, {minute} tries)")
    assert not poison.exists() and (tmp_path / "failed" / poison.name).exists()
    assert read_failing(tmp_path) == []
    status = flows_status(database_url, key_file, tmp_path)
    assert status["failing"] == "no"
    assert status["moved_to_failed"] == f"1 in {tmp_path / 'failed'}, newest {poison.name}"
    assert "moved to" in caplog.text and str(tmp_path / "failed") in caplog.text


def test_a_database_outage_never_moves_files_aside_and_status_says_since_when(tmp_path: Path) -> None:
    path = spool_file(tmp_path, "down", NOW, [("10.1.0.11", MB)])
    nowhere = create_engine("postgresql+psycopg2://nobody@/nothing?host=/nonexistent", pool_pre_ping=True)
    loop = importer(nowhere, tmp_path, NOW + timedelta(minutes=5))
    for _ in range(MAX_TRIES + 1):
        assert loop.run_cycle().errors == 1
    assert path.exists() and not (tmp_path / "failed").exists()
    (failing,) = read_failing(tmp_path)
    assert (failing.what, failing.tries) == (DATABASE, MAX_TRIES + 1)
    assert failing.since == (NOW + timedelta(minutes=5)).isoformat()
    assert "nonexistent" in failing.reason
