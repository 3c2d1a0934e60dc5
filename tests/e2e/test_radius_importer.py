"""Buffered accounting billed by the importer process (`hotspotctl radius import`) from the detail file a
real radiusd writes: answered at once, the same charges as the per-packet path at the NAS's time, exactly once
across kill -9 and across the upgrade from the retired in-radiusd reader; its batches pruned."""

from __future__ import annotations

import os
import shutil
import signal
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

from sqlalchemy import Engine

from rlm_hotspot.pins import PinVault
from rlm_hotspot.radius.detail import RECEIVED_AT, Entry, parse
from tests.e2e.conftest import wait_until
from tests.e2e.radius_harness import NAS_BY_VENDOR, RadiusServer, build_world, importer, login_happened_earlier
from tests.e2e.test_radius_accounting import assert_balanced, rows

MIKROTIK = NAS_BY_VENDOR["mikrotik"]


def report_one_session(server: RadiusServer, radius_db: Engine, vault: PinVault, session_id: str) -> None:
    """A login, then the NAS reports its whole 601 s session at once, each packet's delay said, one Interim
    retransmitted: Start, Interim, Interim again, Stop."""
    batch = build_world(radius_db, vault, traffic_price=10)
    number = batch.numbers[0]
    accepted = server.login(number, batch.pins[0], nas_ip=MIKROTIK)
    login_happened_earlier(radius_db, 601)
    ids = {"User_Name": number, "Acct_Session_Id": session_id, "Class": accepted.one("Class")}
    interim = {"Acct_Session_Time": 300, "Acct_Input_Octets": 100_000, "Acct_Output_Octets": 1_900_000}
    for status, counters in (
        ("start", {"Acct_Session_Time": 0, "Acct_Delay_Time": 601}),
        ("interim", {**interim, "Acct_Delay_Time": 301}),
        ("interim", {**interim, "Acct_Delay_Time": 302}),  # a retransmit
        ("stop", {"Acct_Session_Time": 601, "Acct_Input_Octets": 200_000, "Acct_Output_Octets": 2_800_000}),
    ):
        assert server.account(status, nas_ip=MIKROTIK, **ids, **counters) is not None


def assert_billed_once_at_the_nas_time(radius_db: Engine) -> None:
    """What the direct path bills for `report_one_session`: each interval at its own time, the retransmit
    never."""
    assert rows(radius_db, "SELECT cause, amount FROM ledger ORDER BY id") == [
        ("card_load", 500),
        ("time", -10),
        ("traffic", -20),
        ("time", -12),
        ("traffic", -10),
    ]
    assert rows(radius_db, "SELECT seconds, charged FROM sessions") == [(601, 52)]
    assert_balanced(radius_db)


def test_a_buffered_session_is_answered_at_once_and_billed_exactly_once_at_the_nas_time(
    buffered_radius_server: RadiusServer, radius_db: Engine, vault: PinVault
) -> None:
    """`--buffered-accounting`: radiusd answers once the packet is in its detail file, the importer bills it."""
    report_one_session(buffered_radius_server, radius_db, vault, "B1")
    wait_until(lambda: rows(radius_db, "SELECT status FROM sessions") == [("closed",)], what="the buffer drained")
    assert_billed_once_at_the_nas_time(radius_db)


def test_a_spooled_session_is_billed_by_the_importer_as_the_hook_bills_it(
    spooling_radius_server: RadiusServer, radius_db: Engine, vault: PinVault
) -> None:
    server = spooling_radius_server
    with importer(server):
        report_one_session(server, radius_db, vault, "I1")
        wait_until(lambda: rows(radius_db, "SELECT status FROM sessions") == [("closed",)], what="the spool billed")
    assert_billed_once_at_the_nas_time(radius_db)  # as the hook bills it, inside radiusd or directly
    assert rows(radius_db, "SELECT sum(packets) FROM radius_batches") == [(4,)]
    assert list(server.spool.glob("buffer.detail*")) == []  # billed files are deleted


def test_killed_mid_batch_the_importer_resumes_and_bills_every_packet_exactly_once(
    spooling_radius_server: RadiusServer, radius_db: Engine, vault: PinVault
) -> None:
    """The importer claims files while radiusd writes them and is killed twice mid-run: every packet radiusd
    answered is billed once (none written into a claimed file after it was read, none twice)."""
    server = spooling_radius_server
    sessions = 120
    batch = build_world(radius_db, vault, count=sessions)
    classes = [server.login(n, p, nas_ip=MIKROTIK).one("Class") for n, p in zip(batch.numbers, batch.pins, strict=True)]
    login_happened_earlier(radius_db, 300)
    packets = 3 * sessions

    def committed() -> int:
        return int(rows(radius_db, "SELECT coalesce(sum(packets), 0) FROM radius_batches")[0][0])

    def send(status: str, seconds: int) -> None:
        for i, number in enumerate(batch.numbers):
            attributes = {"User_Name": number, "Acct_Session_Id": f"K{i}", "Class": classes[i]}
            reply = server.account(
                status, nas_ip=MIKROTIK, Acct_Session_Time=seconds, Acct_Delay_Time=300 - seconds, **attributes
            )
            assert reply is not None

    with importer(server, batch_size=7) as process:  # claims the file again and again while radiusd writes
        send("start", 0)
        send("interim", 120)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    send("stop", 240)
    assert committed() < packets
    with importer(server, batch_size=7) as process:
        wait_until(lambda: committed() >= packets * 3 // 4, timeout=60, what="three quarters billed")
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    with importer(server, batch_size=7):
        wait_until(lambda: committed() >= packets, timeout=60, what="every packet billed")
        wait_until(lambda: not list(server.spool.glob("buffer.detail*")), what="the work files deleted")
    assert committed() == packets
    assert rows(radius_db, "SELECT status, seconds, charged, count(*) FROM sessions GROUP BY 1, 2, 3") == [
        ("closed", 240, 8, sessions)  # 4 started minutes at 1.20/hour, each session
    ]
    assert rows(radius_db, "SELECT count(*), sum(amount) FROM ledger WHERE cause = 'time'") == [
        (2 * sessions, -8 * sessions)  # interim (2 minutes) and stop (2 more), never twice
    ]
    ranges = rows(radius_db, "SELECT spool_file, first_byte, end_byte FROM radius_batches ORDER BY 1, 2")
    assert all(a[0] != b[0] or a[2] <= b[1] for a, b in pairwise(ranges))  # no byte twice
    assert_balanced(radius_db)


def test_after_an_upgrade_the_importer_bills_what_the_retired_reader_left_exactly_once(
    spooling_radius_server: RadiusServer, radius_db: Engine, vault: PinVault, tmp_path: Path
) -> None:
    """The hotspot-buffer server (retired) left its work file, `buffer.detail.work`, with entries it had billed
    already and entries it had not: the importer bills it first, and the billed ones charge nothing again."""
    server = spooling_radius_server
    report_one_session(server, radius_db, vault, "U1")
    live = server.spool / "buffer.detail"
    left_by_the_reader = tmp_path / "buffer.detail.work"
    shutil.copyfile(live, left_by_the_reader)
    first_two = b"\n\n".join(left_by_the_reader.read_bytes().split(b"\n\n")[:2]) + b"\n\n"
    live.write_bytes(first_two)  # what the reader had billed before the upgrade: Start and Interim
    with importer(server):
        wait_until(lambda: not list(server.spool.glob("buffer.detail*")), what="the reader's entries billed")
    assert rows(radius_db, "SELECT status FROM sessions") == [("open",)]

    shutil.copyfile(left_by_the_reader, server.spool / "buffer.detail.work")  # all four, as the reader left it
    with importer(server):
        wait_until(lambda: not list(server.spool.glob("buffer.detail*")), what="the reader's work file billed")
    assert_billed_once_at_the_nas_time(radius_db)
    assert rows(radius_db, "SELECT sum(packets) FROM radius_batches") == [(2 + 4,)]


def test_after_an_accounting_on_its_guests_log_in_again_before_the_importer_bills_it(
    spooling_radius_server: RadiusServer, radius_db: Engine, vault: PinVault
) -> None:
    """Buffered, the Accounting-On is answered before it is billed: a reboot storm's logins must not be
    refused "in use on another device" because of the sessions it ended (bench/reboot_storm.py)."""
    server = spooling_radius_server
    batch = build_world(radius_db, vault)
    number, pin = batch.numbers[0], batch.pins[0]
    first = server.login(number, pin, nas_ip=MIKROTIK)
    assert first.accepted
    login_happened_earlier(radius_db, 60)  # the session began a while before the reboot (its Start: 30 s ago)
    start = {"User_Name": number, "Acct_Session_Time": 0, "Acct_Delay_Time": 30, "Class": first.one("Class")}
    assert server.account("start", nas_ip=MIKROTIK, Acct_Session_Id="R1", **start) is not None
    assert not server.login(number, pin, nas_ip=MIKROTIK).accepted  # its one slot is taken
    assert server.account("on", nas_ip=MIKROTIK) is not None  # spooled: no importer runs yet
    again = server.login(number, pin, nas_ip=MIKROTIK)
    assert again.accepted
    restart = {"User_Name": number, "Acct_Session_Time": 0, "Class": again.one("Class")}
    assert server.account("start", nas_ip=MIKROTIK, Acct_Session_Id="R2", **restart) is not None
    with importer(server):
        wait_until(lambda: rows(radius_db, "SELECT sum(packets) FROM radius_batches") == [(3,)], what="billed")
    assert rows(radius_db, "SELECT acct_session_id, status, terminate_cause FROM sessions ORDER BY id") == [
        ("R1", "closed", "NAS-Reboot"),
        ("R2", "open", None),
    ]
    assert_balanced(radius_db)


def buffered_entries(server: RadiusServer) -> list[Entry]:
    """The entries radiusd has written to its buffer and no importer has claimed yet."""
    return parse((server.spool / "buffer.detail").read_bytes()).entries


def test_an_accounting_on_ends_what_began_before_it_in_its_second_to_the_microsecond(
    spooling_radius_server: RadiusServer, radius_db: Engine, vault: PinVault
) -> None:
    """Buffered, the entries carry radiusd's exact receive time (the Timestamp has whole seconds): a session
    started and a login made just before the Accounting-On, in its second, end with it — their guests log in
    again at once, and the importer closes both at the On's exact time. The time is radiusd's own: text a NAS
    sends cannot put one in the entry."""
    server = spooling_radius_server
    batch = build_world(radius_db, vault)
    (started, pending), pins = batch.numbers[:2], batch.pins[:2]
    sent_after = datetime.now(UTC)
    first = server.login(started, pins[0], nas_ip=MIKROTIK)
    start = {"User_Name": started, "Acct_Session_Time": 0, "Class": first.one("Class")}
    assert server.account("start", nas_ip=MIKROTIK, Acct_Session_Id="E1", **start) is not None
    assert server.login(pending, pins[1], nas_ip=MIKROTIK).accepted  # its Start never comes: the NAS rebooted
    # no packet can carry the attribute (its number is internal); a line of its own in text is not one either
    forged = f'x"\n\t{RECEIVED_AT} = "1000000000.000000'
    assert server.account("on", nas_ip=MIKROTIK, NAS_Identifier=forged) is not None  # spooled: no importer yet
    logins = [server.login(number, pin, nas_ip=MIKROTIK) for number, pin in zip((started, pending), pins, strict=True)]
    assert [login.accepted for login in logins] == [True, True]  # the sessions before the On hold no slot

    [start_entry, on_entry] = buffered_entries(server)
    assert [len(entry.attributes.values(RECEIVED_AT)) for entry in (start_entry, on_entry)] == [1, 1]
    assert on_entry.written_at is not None and start_entry.written_at is not None
    assert sent_after < start_entry.written_at < on_entry.written_at  # radiusd's times, not the forged one
    assert rows(radius_db, "SELECT restart_seen_at FROM nas WHERE ip_address = :ip", ip=MIKROTIK) == [
        (on_entry.written_at,)
    ]
    with importer(server):
        wait_until(lambda: rows(radius_db, "SELECT sum(packets) FROM radius_batches") == [(2,)], what="billed")
    assert rows(
        radius_db,
        "SELECT c.number, s.acct_session_id, s.status, s.terminate_cause, s.stopped_at FROM sessions s "
        "JOIN cards c ON c.id = s.card_id WHERE s.started_at < :on ORDER BY c.number",
        on=on_entry.written_at,
    ) == sorted([(started, "E1", "closed", "NAS-Reboot", on_entry.written_at),
                 (pending, None, "closed", "NAS-Reboot", on_entry.written_at)])  # fmt: skip
    assert rows(radius_db, "SELECT count(*) FROM sessions WHERE status = 'pending' AND started_at > :on",
                on=on_entry.written_at) == [(2,)]  # fmt: skip
    assert_balanced(radius_db)


def test_what_follows_an_accounting_on_in_its_second_outlives_it(
    spooling_radius_server: RadiusServer, radius_db: Engine, vault: PinVault
) -> None:
    """The other order: a login and its Start just after the Accounting-On, in its second, open a session the
    On does not end, at their exact times."""
    server = spooling_radius_server
    batch = build_world(radius_db, vault)
    assert server.account("on", nas_ip=MIKROTIK) is not None
    login = server.login(batch.numbers[0], batch.pins[0], nas_ip=MIKROTIK)
    start = {"User_Name": batch.numbers[0], "Acct_Session_Time": 0, "Class": login.one("Class")}
    assert server.account("start", nas_ip=MIKROTIK, Acct_Session_Id="F1", **start) is not None
    [on_entry, start_entry] = buffered_entries(server)
    assert on_entry.written_at is not None and start_entry.written_at is not None
    with importer(server):
        wait_until(lambda: rows(radius_db, "SELECT sum(packets) FROM radius_batches") == [(2,)], what="billed")
    [(status, started_at, rebooted_at)] = rows(
        radius_db, "SELECT s.status, s.started_at, n.rebooted_at FROM sessions s JOIN nas n ON n.id = s.nas_id"
    )
    assert status == "open" and rebooted_at == on_entry.written_at < started_at <= start_entry.written_at
    assert_balanced(radius_db)
