"""Random spool files — truncated, re-delivered, absurd, malformed, out of order — thrown at the import loop
against the real database. After every cycle: each session has paid exactly the price of its plausible
bytes (capped at the line rate per IP, bin and direction), the excess of each is in the quarantine, and
sum(ledger) == balance for every account. Seeded, so a failure names the seed that reproduces it."""

from __future__ import annotations

import json
import os
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from flowimport.importer import Importer, ImporterSettings
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services.flows import NUMERIC_20_MAX, ImportPolicy, line_rate_bound
from tests.conftest import NOW
from tests.db.helpers import assert_ledger_balanced
from tests.db.test_flow_world import HOTSPOT, MB, flow_world, open_session, price, traffic_debited

RATE_KBPS = 8_000  # 63 MB per one-minute bin: random counts cross it often
BOUND = line_rate_bound(RATE_KBPS, 60)
GUESTS = ["10.1.0.11", "10.1.0.12", "10.1.0.13"]
STRANGER = "10.1.0.99"  # no session: unattributed
CYCLES = 20
FIELD = {"down": "ip_dst", "up": "ip_src"}


@dataclass
class Truth:
    """What the loop must have done: the plausible billable bytes per guest, the held excess per guest."""

    billable: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    held: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add_bin(self, sums: dict[tuple[str, bool], int]) -> None:
        """One bin and direction's summed counts per (IP, free?), as imported in one transaction."""
        for (ip, free), size in sums.items():
            if ip == STRANGER:
                continue
            if not free:
                self.billable[ip] += min(size, BOUND)
            if size > BOUND:
                self.held[ip] += min(size - BOUND, NUMERIC_20_MAX)


def good_record(rng: random.Random, direction: str, stamp: str) -> tuple[dict[str, object], str, bool, int]:
    ip = rng.choice([*GUESTS, STRANGER])
    free = rng.random() < 0.2
    size = rng.choice([rng.randrange(0, 40 * MB), rng.randrange(BOUND - MB, BOUND + 40 * MB), 10**15, 10**20, 10**25])
    record = {
        "event_type": "purge",
        "tag": 1 if free else 2,
        FIELD[direction]: ip,
        "stamp_inserted": stamp,
        "stamp_updated": stamp,
        "packets": 1,
        "bytes": size,
    }
    return record, ip, free, size


def bad_line(rng: random.Random, direction: str, stamp: str) -> str:
    base = {
        "event_type": "purge",
        "tag": 2,
        FIELD[direction]: "10.1.0.11",
        "stamp_inserted": stamp,
        "stamp_updated": stamp,
        "packets": 1,
        "bytes": 5,
    }
    return rng.choice(
        [
            json.dumps({**base, "bytes": -5}),
            json.dumps({**base, "bytes": "500"}),
            json.dumps({**base, "stamp_inserted": [1]}),
            json.dumps({**base, "stamp_inserted": "1"}),
            json.dumps({**base, "stamp_inserted": str(int(stamp) + 86_400 * 365 * 100)}),
            json.dumps({**base, "tag": 0}),
            json.dumps(base)[:30],
            "[" * 5000,
            json.dumps({**base, "bytes": 0}).replace("0}", "9" * 5000 + "}"),
        ]
    )


def write_file(rng: random.Random, spool: Path, direction: str, bin_start: datetime, truth: Truth) -> None:
    """One or two blocks, with malformed lines; maybe cut short (only closed blocks count)."""
    stamp = str(int(bin_start.timestamp()))
    lines: list[tuple[str, list[tuple[str, bool, int]] | None]] = []  # (line, counts if it closes a block)
    for writer in range(rng.choice([1, 1, 2])):
        wid = f"{direction}/{rng.randrange(10**6)}.{writer}"
        lines.append((json.dumps({"event_type": "purge_init", "writer_id": wid}), None))
        counts, entries = [], 0
        for _ in range(rng.randrange(0, 6)):
            if rng.random() < 0.25:
                lines.append((bad_line(rng, direction, stamp), None))
            else:
                record, ip, free, size = good_record(rng, direction, stamp)
                lines.append((json.dumps(record), None))
                counts.append((ip, free, size))
            entries += 1
        lines.append((json.dumps({"event_type": "purge_close", "writer_id": wid, "purged_entries": entries}), counts))
    data = "".join(line + "\n" for line, _ in lines)
    cut = len(data) if rng.random() < 0.7 else rng.randrange(len(data))
    sums: dict[tuple[str, bool], int] = defaultdict(int)
    offset = 0
    for line, counts in lines:
        offset += len(line)  # a close line read whole closes its block, with or without its line end
        if counts is not None and offset <= cut:
            for ip, free, size in counts:
                sums[ip, free] += size
        offset += 1
    path = spool / f"{direction}-{bin_start:%Y%m%d-%H%M%S}.json"
    path.write_text(data[:cut])
    written = (bin_start + timedelta(seconds=61)).timestamp()
    os.utime(path, (written, written))
    truth.add_bin(sums)


def check(engine: Engine, truth: Truth, accounts: dict[str, int], sessions: dict[str, int], seed: int) -> None:
    with Session(engine) as session:
        for ip in GUESTS:
            assert traffic_debited(session, accounts[ip]) == price(truth.billable[ip]), (seed, ip)
            held = session.execute(
                text("SELECT coalesce(sum(held), 0) FROM quarantine WHERE session_id = :s"), {"s": sessions[ip]}
            ).scalar_one()
            assert held == truth.held[ip], (seed, ip)
        assert_ledger_balanced(session)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_random_spool_files_bill_exactly_the_plausible_bytes(
    committed: Engine, vault: PinVault, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    with Session(committed) as session, session.begin():
        numbers = flow_world(session, vault, night_band=False)
        session.execute(text("UPDATE hotspots SET max_rate_kbps = :kbps"), {"kbps": RATE_KBPS})
        guests = {
            ip: open_session(session, numbers[i], ip, started_at=NOW - timedelta(days=1)) for i, ip in enumerate(GUESTS)
        }
    accounts = {ip: guest.account_id for ip, guest in guests.items()}
    sessions = {ip: guest.session_id for ip, guest in guests.items()}
    truth = Truth()
    minutes = rng.sample(range(200), CYCLES * 3)  # every cycle its own bins, in no order
    spool = tmp_path / "spool"
    spool.mkdir()
    for cycle in range(CYCLES):
        bins = [NOW + timedelta(minutes=m) for m in minutes[cycle * 3 : cycle * 3 + 3]]
        for bin_start in bins:
            for direction in ("down", "up"):
                write_file(rng, spool, direction, bin_start, truth)
        done = sorted((spool / "done").glob("*.json")) if (spool / "done").exists() else []
        for again in rng.sample(done, min(len(done), 2)):  # re-delivered: must change nothing
            again.rename(spool / again.name)
        clock = NOW + timedelta(minutes=max(minutes[: cycle * 3 + 3]) + 4)  # the clock never goes back
        settings = ImporterSettings(hotspot=HOTSPOT, spool=spool, policy=ImportPolicy(60, 180))
        report = Importer(settings, sessionmaker(committed), clock=lambda clock=clock: clock).run_cycle()
        assert report.errors == 0, seed
        assert list(spool.glob("*.json")) == [], seed  # every file imported and moved: nothing stalls
        check(committed, truth, accounts, sessions, seed)
    with Session(committed) as session, session.begin():  # the sessions end: their statements add up
        session.execute(text("UPDATE sessions SET status = 'closed', stopped_at = :at"), {"at": clock})
    with Session(committed) as session:
        for ip in GUESTS:
            carried = session.execute(
                text("SELECT coalesce(sum(bytes), 0) FROM ledger WHERE session_id = :s AND cause = 'traffic'"),
                {"s": sessions[ip]},
            ).scalar_one()
            assert carried == truth.billable[ip], (seed, ip)
