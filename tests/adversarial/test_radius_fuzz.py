"""Random accounting histories, as a NAS on a bad day sends them, thrown at a real radiusd.

Each seed builds the true history of a NAS: epochs of overlapping sessions of a few cards, session ids
drawn from a small pool (so ids come back, for other cards and the same one), reboots between epochs
(with or without Accounting-On, cutting sessions without their Stop), counters past 4 GiB. The adversary
then duplicates and reorders packets and slips in absurd ones: 136 years of session time, a thousand
Gigawords, 2^64 - 1 octets, an hour ahead of the clock, a counter that reset for one packet. Every packet
says in Acct-Delay-Time when it was sent, as a retransmit queue does.

After each history: every card is charged exactly the price of what a correct NAS reported of its
sessions, every held amount comes from an absurd packet, every closed session's ledger rows add up to its
seconds and billable bytes, and every account's balance is its ledger.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from rlm_hotspot.pins import PinVault
from tests.db.helpers import assert_ledger_balanced
from tests.e2e.conftest import wait_until
from tests.e2e.radius_harness import NAS_BY_VENDOR, RadiusServer, build_world, importer

pytestmark = pytest.mark.e2e
MIKROTIK = NAS_BY_VENDOR["mikrotik"]
EPOCH_S = 1500
GIGAWORD = 2**32


@dataclass(frozen=True)
class Packet:
    at: float  # when the NAS sent it (POSIX seconds)
    status: str
    attributes: dict[str, object] = field(default_factory=dict)


@dataclass
class TrueSession:
    card: str
    acct_id: str
    start: float
    reports: list[tuple[float, int, int, int]] = field(default_factory=list)  # (at, seconds, in, out)

    def counters(self, seconds: int, upload: int, download: int) -> dict[str, object]:
        return {
            "User_Name": self.card,
            "Acct_Session_Id": self.acct_id,
            "Acct_Session_Time": seconds,
            "Acct_Input_Octets": upload % GIGAWORD,
            "Acct_Input_Gigawords": upload // GIGAWORD,
            "Acct_Output_Octets": download % GIGAWORD,
            "Acct_Output_Gigawords": download // GIGAWORD,
        }

    def price(self) -> int:
        """What a correct NAS's last report of it costs: 0.02 per started minute, 0.10 per started MB."""
        _, seconds, upload, download = self.reports[-1]
        return -(-seconds // 60) * 2 + -(-(upload + download) * 10 // 10**6)


def history(rng: random.Random, cards: list[str], now: float) -> tuple[list[TrueSession], list[Packet]]:
    """The true sessions and the packets a correct NAS sends for them, in the order it sends them."""
    sessions: list[TrueSession] = []
    packets: list[Packet] = []
    epochs = 3
    for epoch in range(epochs):
        base = now - (epochs - epoch) * EPOCH_S - 60
        playing = rng.sample(cards, rng.randint(1, len(cards)))
        ids = rng.sample(["1", "2", "3", "4"], len(playing))  # live sessions of a NAS have distinct ids
        reboot = rng.choice(["none", "accounting-on", "silent"]) if epoch < epochs - 1 else "none"
        for card, acct_id in zip(playing, ids, strict=True):
            session = TrueSession(card, acct_id, base + rng.uniform(0, 300))
            sessions.append(session)
            packets.append(Packet(session.start, "start", session.counters(0, 0, 0)))
            at, seconds, upload, download = session.start, 0, 0, 0
            rate = rng.choice([2_000, 200_000, 20_000_000])  # bytes a second: idle, browsing, past 4 GiB soon
            for _ in range(rng.randint(1, 4)):  # the epoch's sessions end before a reboot 20 s before its end
                step = rng.randint(60, 240)
                at, seconds = at + step, seconds + step
                upload += rng.randint(0, rate * step // 10)
                download += rng.randint(0, rate * step)
                session.reports.append((at, seconds, upload, download))
                packets.append(Packet(at, "interim", session.counters(seconds, upload, download)))
            if reboot == "none" or rng.random() < 0.5:  # a reboot cuts some sessions without their Stop
                seconds += rng.randint(1, 60)
                at = session.start + seconds
                session.reports.append((at, seconds, upload, download))
                stop = {**session.counters(seconds, upload, download), "Acct_Terminate_Cause": "User-Request"}
                packets.append(Packet(at, "stop", stop))
        if reboot == "accounting-on":
            packets.append(Packet(base + EPOCH_S - 20, "on"))
    packets.sort(key=lambda packet: packet.at)
    return sessions, packets


@dataclass(frozen=True)
class Absurd:
    """What the adversary sent: the packets, and the counters no correct NAS reports (quantity, value)."""

    packets: list[Packet]
    reported: set[tuple[str, int]]


def adversary(rng: random.Random, packets: list[Packet], sessions: list[TrueSession]) -> Absurd:
    """Duplicates, reorders neighbours of one session, and slips absurd packets into live sessions."""
    sent, reported = list(packets), set()
    for session in rng.sample(sessions, len(sessions) // 2 + 1):
        at, seconds, upload, download = rng.choice(session.reports[:-1] or session.reports)
        counters = session.counters(seconds, upload, download)
        absurd = rng.choice(
            [
                {"Acct_Session_Time": 0xFFFFFFFF},
                {"Acct_Input_Gigawords": 1000},
                {"Acct_Output_Octets": 0xFFFFFFFF, "Acct_Output_Gigawords": 0xFFFFFFFF},
                {"Acct_Session_Time": seconds + 3600},
                {"Acct_Session_Time": 0, "Acct_Input_Octets": 0, "Acct_Output_Octets": 0,
                 "Acct_Input_Gigawords": 0, "Acct_Output_Gigawords": 0},
            ]
        )  # fmt: skip
        attributes = {**counters, **absurd}
        sent.append(Packet(at + 0.5, "interim", attributes))
        reported |= {
            ("seconds", attributes["Acct_Session_Time"]),
            ("upload", attributes["Acct_Input_Gigawords"] * GIGAWORD + attributes["Acct_Input_Octets"]),
            ("download", attributes["Acct_Output_Gigawords"] * GIGAWORD + attributes["Acct_Output_Octets"]),
        }
    sent.sort(key=lambda packet: packet.at)
    for _ in range(len(sent) // 4):  # duplicates, sent again a little later
        copy = rng.randrange(len(sent))
        sent.insert(min(len(sent), copy + rng.randint(1, 4)), sent[copy])
    for _ in range(len(sent) // 4):  # neighbours of one session swapped
        i = rng.randrange(len(sent) - 1)
        a, b = sent[i], sent[i + 1]
        if (
            "on" not in (a.status, b.status)
            and a.attributes.get("Acct_Session_Id") == b.attributes.get("Acct_Session_Id")
            and a.attributes.get("User_Name") == b.attributes.get("User_Name")
        ):
            sent[i], sent[i + 1] = b, a
    return Absurd(sent, reported)


def rows(engine: Engine, sql: str) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql))]


@pytest.mark.parametrize("seed", range(int(__import__("os").environ.get("FUZZ_SEEDS", 24))))
def test_a_random_bad_day_bills_every_card_what_a_correct_nas_reported(
    radius_server: RadiusServer, radius_db: Engine, vault: PinVault, seed: int
) -> None:
    bad_day(radius_server, radius_db, vault, seed)


@pytest.mark.parametrize("seed", range(int(__import__("os").environ.get("FUZZ_SEEDS_IMPORTER", 8))))
def test_a_random_bad_day_billed_by_the_importer_bills_what_a_correct_nas_reported(
    spooling_radius_server: RadiusServer, radius_db: Engine, vault: PinVault, seed: int
) -> None:
    """The same, with buffered accounting: radiusd writes the detail file, `hotspotctl radius import` bills it."""
    with importer(spooling_radius_server):
        bad_day(spooling_radius_server, radius_db, vault, seed, billed=lambda sent: billed(radius_db) >= sent)


def billed(engine: Engine) -> int:
    return int(rows(engine, "SELECT coalesce(sum(packets), 0) FROM radius_batches")[0][0])  # type: ignore[call-overload]


def bad_day(
    server: RadiusServer, radius_db: Engine, vault: PinVault, seed: int, billed: Callable[[int], bool] | None = None
) -> None:
    """One seed's history sent to `server`; then (`billed`: once it says the packets sent are billed) checked."""
    rng = random.Random(seed)
    cards = build_world(radius_db, vault, count=3, traffic_price=10, face_value=10**9).numbers
    sessions, packets = history(rng, list(cards), time.time())
    absurd = adversary(rng, packets, sessions)
    for packet in absurd.packets:
        delay = max(0, round(time.time() - packet.at))
        reply = server.account(packet.status, nas_ip=MIKROTIK, Acct_Delay_Time=delay, **packet.attributes)
        assert reply is not None, f"seed {seed}: {packet} was not answered: {server.log_text()[-3000:]}"
    if billed is not None:
        wait_until(lambda: billed(len(absurd.packets)), timeout=60, what=f"seed {seed}: the packets billed")
    expected = {card: sum(s.price() for s in sessions if s.card == card) for card in cards}
    charged = dict(
        rows(
            radius_db,
            "SELECT c.number, coalesce(-sum(l.amount) FILTER (WHERE l.cause IN ('time', 'traffic')), 0) "
            "FROM cards c LEFT JOIN ledger l ON l.card_id = c.id GROUP BY c.number",
        )
    )
    assert charged == expected, f"seed {seed}"
    held = {
        (quantity, int(reported)) for quantity, reported in rows(radius_db, "SELECT quantity, reported FROM quarantine")
    }  # type: ignore[call-overload]
    assert held <= absurd.reported, f"seed {seed}: held what a correct NAS reported"
    unsettled = rows(
        radius_db,
        "SELECT s.id FROM sessions s LEFT JOIN ledger l ON l.session_id = s.id WHERE s.status = 'closed' "
        "GROUP BY s.id HAVING s.seconds <> coalesce(sum(l.seconds), 0) "
        "OR session_billable_bytes(s) <> coalesce(sum(l.bytes), 0)",
    )
    assert unsettled == [], f"seed {seed}: a closed session's statement does not add up to its counters"
    with Session(radius_db) as session:
        assert_ledger_balanced(session)
