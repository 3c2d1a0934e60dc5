"""The accounting importer prunes the batches of files long deleted: they only guard resuming a file that
still exists, and would otherwise grow by one row per batch forever."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from devtools.ha import free_tcp_ports
from rlm_hotspot.clock import utc_now
from rlm_hotspot.db import radius_batches
from rlm_hotspot.pins import PinVault
from rlm_hotspot.radius.importer import AccountingImporter
from tests.db.helpers import assert_ledger_balanced
from tests.db.test_sessions import NAS_IP, radius_login, radius_world
from tests.e2e.conftest import wait_until


def add_batch(db: Session, spool_file: str, days_ago: int) -> None:
    db.execute(
        text(
            "INSERT INTO radius_batches (spool_file, first_byte, end_byte, packets, committed_at) "
            "VALUES (:file, 0, 100, 1, now() - make_interval(days => :days))"
        ),
        {"file": spool_file, "days": days_ago},
    )


def spool_files(db: Session) -> list[str]:
    return list(db.execute(text("SELECT spool_file FROM radius_batches ORDER BY spool_file")).scalars())


def test_prune_removes_only_old_batches_of_this_hosts_deleted_files(db: Session) -> None:
    for name, days_ago in (("h1:/s/old", 40), ("h1:/s/recent", 2), ("h1:/s/still-there", 40), ("h2:/s/old", 40)):
        add_batch(db, name, days_ago)

    pruned = radius_batches.prune(db, "h1:", utc_now() - timedelta(days=30), existing={"h1:/s/still-there"})

    assert pruned == 1
    assert spool_files(db) == ["h1:/s/recent", "h1:/s/still-there", "h2:/s/old"]


def test_the_importer_prunes_as_it_runs_with_the_retention_it_is_given(committed: Engine, tmp_path: Path) -> None:
    importer = AccountingImporter(
        tmp_path, sessionmaker(committed), host="h1", keep_batches=timedelta(days=7), poll_interval=0
    )
    with Session(committed) as db, db.begin():
        for name, days_ago in (("h1:/s/a", 8), ("h1:/s/b", 6), ("h2:/s/c", 8)):
            add_batch(db, name, days_ago)

    importer.run(once=True)

    with Session(committed) as db:
        assert spool_files(db) == ["h1:/s/b", "h2:/s/c"]
    assert importer.metrics.registry.get_sample_value("hotspot_radius_import_pruned_batches_total") == 1


def test_a_database_that_does_not_answer_is_counted_and_waited_out(tmp_path: Path) -> None:
    """The loop logs the outage, counts it for HotspotRadiusImportDatabaseErrors and tries again (here: stops)."""
    [port] = free_tcp_ports(1)  # nothing listens there
    engine = create_engine(f"postgresql+psycopg2://nobody@127.0.0.1:{port}/none", connect_args={"connect_timeout": 2})
    importer = AccountingImporter(tmp_path, sessionmaker(engine), host="h1")
    importer.stopping.set()  # one pass, then the wait that ends the loop

    report = importer.run()

    assert report.packets == 0
    sample = importer.metrics.registry.get_sample_value
    assert sample("hotspot_radius_import_database_errors_total", {"kind": "unavailable"}) == 1
    engine.dispose()


def test_the_live_file_is_synced_at_each_poll_while_the_database_is_down(tmp_path: Path) -> None:
    """radiusd answers without fsyncing its detail file: the importer fdatasyncs it at each poll, also while it
    cannot bill, so a power cut loses at most what was answered since the last poll (not ~35 s of it)."""
    [port] = free_tcp_ports(1)  # nothing listens there
    engine = create_engine(f"postgresql+psycopg2://nobody@127.0.0.1:{port}/none", connect_args={"connect_timeout": 2})
    entry = b"Mon Dec  7 12:00:00 2026\n\tAcct-Status-Type = Accounting-On\n\tNAS-IP-Address = 192.0.2.77\n\n"
    live = tmp_path / "buffer.detail"
    live.write_bytes(entry)
    importer = AccountingImporter(tmp_path, sessionmaker(engine), host="h1", poll_interval=0)
    synced = partial(importer.metrics.registry.get_sample_value, "hotspot_radius_import_synced_bytes")
    importer.stopping.set()  # one pass, then the wait that ends the loop

    importer.run()
    assert synced() == len(entry)  # synced, then claimed: the claim waits for the database
    live.write_bytes(entry * 2)  # radiusd answers more in a new live file while the database is still down
    importer.run()

    assert synced() == 2 * len(entry)
    [claimed] = tmp_path.glob("buffer.detail.*.work")
    assert claimed.read_bytes() == entry  # not billed, not deleted: it waits
    assert importer.metrics.registry.get_sample_value(
        "hotspot_radius_import_database_errors_total", {"kind": "unavailable"}
    ) == 2
    engine.dispose()


def test_a_line_that_is_no_attribute_is_logged_and_a_torn_last_entry_is_left_unbilled(
    committed: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """radiusd died while writing the file's last entry (no closing empty line): it was never answered, so it
    is not billed (the NAS sends it again); a garbled line inside a whole entry is skipped and said."""
    whole = b"Mon Dec  7 12:00:00 2026\n\tAcct-Status-Type = Accounting-On\n\tthis is no attribute\n\n"
    torn = b"Mon Dec  7 12:00:01 2026\n\tAcct-Status-Type = Start\n\tUser-Na"
    (tmp_path / "buffer.detail").write_bytes(whole + torn)
    importer = AccountingImporter(tmp_path, sessionmaker(committed), host="h1", poll_interval=0)

    with caplog.at_level(logging.WARNING, logger="rlm_hotspot.radius.importer"):
        report = importer.run(once=True)

    assert (report.files, report.packets, report.torn) == (1, 1, 1)
    assert "lines that are no attribute skipped: 1" in caplog.text and "torn entry" in caplog.text
    assert list(tmp_path.glob("buffer.detail*")) == []
    with Session(committed) as db:
        recorded = db.execute(text("SELECT first_byte, end_byte, packets FROM radius_batches")).one()
    assert tuple(recorded) == (0, len(whole), 1)


def test_the_database_lost_mid_batch_costs_nothing_and_bills_the_file_once(
    committed: Engine, database_url: str, tmp_path: Path
) -> None:
    """The importer's connection dies while its batch waits to be recorded (a failover, a restart): the batch is
    rolled back whole, the loop waits the outage out and bills the file again from its last committed batch —
    every entry once, none skipped."""
    entry = b"Mon Dec  7 12:00:00 2026\n\tAcct-Status-Type = Accounting-On\n\tNAS-IP-Address = 192.0.2.77\n\n"
    (tmp_path / "buffer.detail").write_bytes(entry * 3)
    engine = create_engine(database_url, connect_args={"application_name": "importer-under-test"})
    importer = AccountingImporter(tmp_path, sessionmaker(engine), host="h1", poll_interval=0.05, batch_size=2)
    with committed.connect() as holder:
        holder.execute(text("LOCK TABLE radius_batches IN EXCLUSIVE MODE"))  # the first batch's record waits
        running = threading.Thread(target=importer.run, daemon=True)
        running.start()
        waiting = text(
            "SELECT pid FROM pg_stat_activity "
            "WHERE application_name = 'importer-under-test' AND wait_event_type = 'Lock'"
        )

        def waiting_pid() -> int | None:
            with committed.connect() as watcher:  # a fresh transaction: the activity view is read once in each
                return watcher.execute(waiting).scalar()

        wait_until(lambda: waiting_pid() is not None, what="the batch waiting on the lock")
        with committed.begin() as killer:
            killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": waiting_pid()})
        holder.rollback()  # the lock goes: the database is back
    wait_until(lambda: not list(tmp_path.glob("buffer.detail*")), what="the file billed and deleted")
    importer.stopping.set()
    running.join(timeout=10)
    engine.dispose()

    with Session(committed) as db:
        batches = [tuple(r) for r in db.execute(text("SELECT first_byte, end_byte, packets FROM radius_batches "
                                                      "ORDER BY first_byte"))]  # fmt: skip
    assert batches == [(0, 2 * len(entry), 2), (2 * len(entry), 3 * len(entry), 1)]
    assert (
        importer.metrics.registry.get_sample_value(
            "hotspot_radius_import_database_errors_total", {"kind": "unavailable"}
        )
        == 1
    )


def test_an_entry_whose_receive_time_no_date_can_hold_is_billed_and_stalls_nothing(
    committed: Engine, tmp_path: Path
) -> None:
    """A restored or hand-edited spool can hold a Hotspot-Received-At or a Timestamp beyond the year 9999: the
    entry is read at the next time it says (the Timestamp, the header), and the file is billed on, not left to
    crash the importer at every restart."""
    on = b"Mon Dec  7 12:00:00 2026\n\tAcct-Status-Type = Accounting-On\n\tNAS-IP-Address = 192.0.2.77\n"
    entries = [
        on + b'\tHotspot-Received-At = "999999999999.000000"\n\tTimestamp = 1796644800\n\n',
        on + b"\tTimestamp = 99999999999999999999\n\n",
        on + b"\n",
    ]
    (tmp_path / "buffer.detail").write_bytes(b"".join(entries))
    importer = AccountingImporter(tmp_path, sessionmaker(committed), host="h1", poll_interval=0)

    report = importer.run(once=True)

    assert (report.files, report.packets) == (1, 3)
    assert list(tmp_path.glob("buffer.detail*")) == []


def accounting_entry(status: str, number: str, seconds: int, *, received: str) -> bytes:
    """A buffered entry as the site writes it (`received`: its Timestamp line or its Hotspot-Received-At line)."""
    return (
        f"Mon Dec  7 12:00:00 2026\n\tAcct-Status-Type = {status}\n\tNAS-IP-Address = {NAS_IP}\n"
        f'\tUser-Name = "{number}"\n\tAcct-Session-Id = "S1"\n\tClass = 0x{b"hs:aX".hex()}\n'
        f"\tAcct-Session-Time = {seconds}\n\t{received}\n\n"
    ).encode()


def test_an_entry_received_after_it_was_read_bills_nothing(
    committed: Engine, vault: PinVault, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """radiusd writes an entry before the importer reads it: a receive time years ahead of the import is no
    radiusd's (a restored or edited spool). Billed at that time, its Interim looked like a new session (it
    "began" long after this one's last packet): a second session, in 2036, charged the same 20 minutes again
    and held the card's slot for ten years. It is logged and not billed; the session is charged once."""
    began = utc_now() - timedelta(hours=1)
    with Session(committed) as db, db.begin():
        [number] = radius_world(db, vault, count=1).numbers
        radius_login(db, vault, number, token="aX", now=began)
    t0 = int(began.timestamp())
    far = f'Hotspot-Received-At = "{t0 + 10 * 365 * 86400}.000000"'
    entries = [
        accounting_entry("Start", number, 0, received=f"Timestamp = {t0}"),
        accounting_entry("Interim-Update", number, 600, received=f"Timestamp = {t0 + 600}"),
        accounting_entry("Interim-Update", number, 1200, received=far),
        accounting_entry("Interim-Update", number, 1800, received=f"Timestamp = {t0 + 1800}"),
        accounting_entry("Stop", number, 2400, received=f"Timestamp = {t0 + 2400}"),
    ]
    (tmp_path / "buffer.detail").write_bytes(b"".join(entries))
    importer = AccountingImporter(tmp_path, sessionmaker(committed), host="h1", poll_interval=0)

    with caplog.at_level(logging.ERROR, logger="rlm_hotspot.radius.importer"):
        report = importer.run(once=True)

    assert (report.packets, report.unbilled) == (5, 1)
    assert "after it was read" in caplog.text
    with Session(committed) as db:
        sessions = db.execute(text("SELECT status, seconds, charged FROM sessions")).all()
        assert [tuple(row) for row in sessions] == [("closed", 2400, 80)]  # 40 started minutes at 1.20/hour
        assert_ledger_balanced(db)
