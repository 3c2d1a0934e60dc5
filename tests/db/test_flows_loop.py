"""The import loop against the real database: exactly once across crashes, never half-applied, never crashes."""

from __future__ import annotations

import json
import logging
import os
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from flowimport.importer import Importer, ImporterSettings
from rlm_hotspot.cli.flows import flows
from rlm_hotspot.cli.main import cli
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services import flows as flow_service
from rlm_hotspot.services.flows import ImportPolicy
from tests.conftest import NOW
from tests.db.helpers import assert_ledger_balanced
from tests.db.test_flow_world import FREE_NET, HOTSPOT, MB, flow_world, open_session, price, traffic_debited

BIN = NOW
WRITTEN = BIN + timedelta(seconds=61)
STAMP = str(int(BIN.timestamp()))


def write_spool_file(spool: Path, name: str, writer: str, counts: list[tuple[str, int]]) -> Path:
    field = "ip_dst" if name.startswith("down") else "ip_src"
    lines = [{"event_type": "purge_init", "writer_id": writer}]
    lines += [
        {"event_type": "purge", "tag": 2, field: ip, "stamp_inserted": STAMP, "packets": 1, "bytes": size}
        for ip, size in counts
    ]
    lines.append({"event_type": "purge_close", "writer_id": writer, "purged_entries": len(counts)})
    path = spool / name
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    os.utime(path, (WRITTEN.timestamp(), WRITTEN.timestamp()))
    return path


@pytest.fixture
def guests(committed: Engine, vault: PinVault) -> list[int]:
    """Two guests on 10.1.0.11 and .12, committed; returns their account ids."""
    with Session(committed) as session, session.begin():
        numbers = flow_world(session, vault)
        return [open_session(session, numbers[i], f"10.1.0.1{i + 1}").account_id for i in range(2)]


def importer(engine: Engine, spool: Path, at: timedelta) -> Importer:
    settings = ImporterSettings(
        hotspot=HOTSPOT, spool=spool, policy=ImportPolicy(60, 180), settle=timedelta(seconds=10)
    )
    return Importer(settings, sessionmaker(engine), clock=lambda: BIN + at)


def debited(engine: Engine, accounts: list[int]) -> list[int]:
    with Session(engine) as session:
        return [traffic_debited(session, account) for account in accounts]


def test_a_crash_between_commit_and_file_move_does_not_bill_twice(
    committed: Engine, guests: list[int], tmp_path: Path
) -> None:
    write_spool_file(tmp_path, "down-20261125-120000.json", "down/1", [("10.1.0.11", 3 * MB), ("10.1.0.12", MB)])
    write_spool_file(tmp_path, "up-20261125-120000.json", "up/2", [("10.1.0.11", MB)])
    # Settled but not final (the bin's refresh is not over): imported, not moved — as if we died before the move.
    first = importer(committed, tmp_path, timedelta(seconds=75)).run_cycle()
    assert (len(first.imported), first.files_done, first.errors) == (2, 0, 0)
    assert len(first.outcomes) == 1  # both files of the bin in one transaction
    assert debited(committed, guests) == [price(4 * MB), price(MB)]
    again = importer(committed, tmp_path, timedelta(seconds=200)).run_cycle()
    assert (len(again.imported), again.replayed, again.files_done) == (0, 2, 2)
    assert debited(committed, guests) == [price(4 * MB), price(MB)]
    assert sorted(p.name for p in (tmp_path / "done").iterdir()) == [
        "down-20261125-120000.json",
        "up-20261125-120000.json",
    ]
    # A re-delivered file is recognised by its blocks' names.
    (tmp_path / "done" / "down-20261125-120000.json").rename(tmp_path / "down-20261125-120000.json")
    assert importer(committed, tmp_path, timedelta(seconds=300)).run_cycle().replayed == 1
    assert debited(committed, guests) == [price(4 * MB), price(MB)]
    with Session(committed) as session:
        assert_ledger_balanced(session)


def test_an_unsettled_file_waits(committed: Engine, guests: list[int], tmp_path: Path) -> None:
    write_spool_file(tmp_path, "down-20261125-120000.json", "down/1", [("10.1.0.11", MB)])
    assert importer(committed, tmp_path, timedelta(seconds=65)).run_cycle().imported == []
    assert debited(committed, guests) == [0, 0]


def test_a_failure_inside_a_batch_rolls_it_back_whole_and_it_is_retried(
    committed: Engine, guests: list[int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_spool_file(tmp_path, "down-20261125-120000.json", "down/1", [("10.1.0.11", MB), ("10.1.0.12", MB)])

    apply_debits = flow_service.q.apply_debits

    def broken(*args: object, **kwargs: object) -> None:
        apply_debits(*args, **kwargs)  # type: ignore[arg-type]
        raise DBAPIError("after the debits", {}, RuntimeError("injected failure after the debits"))

    monkeypatch.setattr(flow_service.q, "apply_debits", broken)
    failed = importer(committed, tmp_path, timedelta(seconds=200)).run_cycle()
    assert (failed.errors, failed.files_done) == (1, 0)
    with Session(committed) as session:
        assert session.execute(text("SELECT count(*) FROM flow_batches")).scalar() == 0
        assert session.execute(text("SELECT count(*) FROM ledger WHERE cause = 'traffic'")).scalar() == 0
        assert session.execute(text("SELECT sum(output_octets) FROM sessions")).scalar() == 0
    monkeypatch.undo()
    retried = importer(committed, tmp_path, timedelta(seconds=200)).run_cycle()
    assert (len(retried.imported), retried.files_done) == (1, 1)
    assert debited(committed, guests) == [price(MB), price(MB)]


def test_a_database_that_is_down_is_logged_and_retried(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_spool_file(tmp_path, "down-20261125-120000.json", "down/1", [("10.1.0.11", MB)])
    nowhere = create_engine("postgresql+psycopg2://nobody@/nothing?host=/nonexistent", pool_pre_ping=True)
    with caplog.at_level(logging.ERROR):
        report = importer(nowhere, tmp_path, timedelta(seconds=200)).run_cycle()
    assert report.errors == 1 and report.files_done == 0
    assert "retrying next cycle" in caplog.text
    assert (tmp_path / "down-20261125-120000.json").exists()


def test_an_unreadable_spool_is_logged_not_fatal(
    committed: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    report = importer(committed, tmp_path / "missing", timedelta(seconds=200)).run_cycle()
    assert report.errors == 1
    assert "cannot read the spool" in caplog.text


def test_a_radius_metered_hotspot_is_refused_by_the_loop(
    committed: Engine, guests: list[int], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with committed.begin() as conn:
        conn.execute(text("UPDATE hotspots SET traffic_meter = 'radius'"))
    write_spool_file(tmp_path, "down-20261125-120000.json", "down/1", [("10.1.0.11", MB)])
    report = importer(committed, tmp_path, timedelta(seconds=200)).run_cycle()
    assert report.errors == 1 and "twice" in caplog.text
    assert debited(committed, guests) == [0, 0]


def test_the_cli_writes_the_collector_config_imports_and_reports(
    committed: Engine, guests: list[int], database_url: str, key_file: Path, tmp_path: Path
) -> None:
    if "flows" not in cli.commands:  # until the lead registers the group in hotspotctl
        cli.add_command(flows)
    env = {"HOTSPOT_DATABASE_URL": database_url, "HOTSPOT_PIN_KEY_FILE": str(key_file), "HOTSPOT_CONFIG": os.devnull}
    runner = CliRunner()
    spool, etc = tmp_path / "spool", tmp_path / "etc"
    result = runner.invoke(
        cli,
        [
            "flows",
            "config",
            "--hotspot",
            HOTSPOT,
            "--client-net",
            "10.1.0.0/16",
            "--free-net",
            "10.1.0.1/32",
            "--collector",
            "127.0.0.1:2100",
            "--spool",
            str(spool),
            "--out",
            str(etc),
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert f"set_tag=1 filter='net {FREE_NET}'" in (etc / "pretag.map").read_text()  # from the tariff
    assert (spool / "done").is_dir()
    bad = runner.invoke(
        cli,
        [
            "flows",
            "config",
            "--hotspot",
            HOTSPOT,
            "--client-net",
            "10.1.0.0/33",
            "--spool",
            str(spool),
            "--out",
            str(etc),
        ],
        env=env,
    )
    assert bad.exit_code == 1 and "bad network '10.1.0.0/33'" in bad.output and "Traceback" not in bad.output
    path = write_spool_file(spool, "down-20261125-120000.json", "down/1", [("10.1.0.11", MB), ("10.9.9.9", 77)])
    imported = runner.invoke(cli, ["flows", "import", "--hotspot", HOTSPOT, str(path), "--format", "csv"], env=env)
    assert imported.exit_code == 0, imported.output
    assert f",{MB},0,77,{price(MB)}" in imported.output
    status = runner.invoke(
        cli, ["flows", "status", "--hotspot", HOTSPOT, "--spool", str(spool), "--format", "json"], env=env
    )
    assert status.exit_code == 0, status.output
    fields = {row["field"]: row["value"] for row in json.loads(status.output)}
    assert fields["unattributed_bytes"] == 77 and fields["pending_files"] == 1
    assert fields["last_batch"].startswith("down-20261125-120000.json#down/1#")
    missing = runner.invoke(
        cli, ["flows", "run", "--hotspot", HOTSPOT, "--spool", str(tmp_path / "nope"), "--once"], env=env
    )
    assert missing.exit_code == 1 and "does not exist" in missing.output
    write_spool_file(spool, "up-20261125-120000.json", "up/2", [("10.1.0.12", 2 * MB)])
    metrics = tmp_path / "flows.prom"
    once = runner.invoke(
        cli,
        ["flows", "run", "--hotspot", HOTSPOT, "--spool", str(spool), "--once", "--metrics-file", str(metrics)],
        env=env,
    )
    assert once.exit_code == 0, once.output
    assert debited(committed, guests) == [price(MB), price(2 * MB)]
    exposition = metrics.read_text()
    assert f'hotspot_flows_batches_total{{hotspot="{HOTSPOT}",outcome="imported"}} 1.0' in exposition
    assert f'hotspot_flows_batches_total{{hotspot="{HOTSPOT}",outcome="replayed"}} 1.0' in exposition
