"""A NetFlow-metered hotspot with guests holding IPs, shared by the flow import tests (DB and e2e).

Sessions are plain INSERTs (the sessions service belongs to the RADIUS/portal work); each guest's card is
activated through the real cards service, so the ledger invariant holds from the start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import count

from sqlalchemy import text
from sqlalchemy.orm import Session

from rlm_hotspot.core.tariff import Band
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services import cards
from tests.conftest import NOW
from tests.db import factories
from tests.db.helpers import assert_ledger_balanced

HOTSPOT = "netcafe"
TARIFF = "per-mb"
FREE_NET = "10.99.0.0/24"
PRICE_PER_MB = 7  # minor units per 10**6 IP-layer bytes, 07:00-22:00 local
NIGHT_PRICE_PER_MB = 3  # 22:00-07:00 local (Europe/Moscow, UTC+3)
MB = 1_000_000
_tokens = count(1)


@dataclass(frozen=True)
class Guest:
    session_id: int
    account_id: int
    card_id: int


def flow_world(
    session: Session, vault: PinVault, *, direction: str = "total", cards_count: int = 6, night_band: bool = True
) -> list[str]:
    """A per-MB tariff (with a night band unless told otherwise: tests on the wall clock need one price)
    and a free network, a netflow hotspot; returns its card numbers."""
    factories.tariff(
        session,
        TARIFF,
        time_price=0,
        traffic_price=PRICE_PER_MB,
        traffic_direction=direction,
        bands=(Band(7 * 60, 0, PRICE_PER_MB), Band(22 * 60, 0, NIGHT_PRICE_PER_MB)) if night_band else (),
        free_networks=(FREE_NET,),
    )
    factories.hotspot(session, HOTSPOT, TARIFF, mode="standalone", traffic_meter="netflow")
    batch = factories.batch(session, vault, count=cards_count, face_value=500, hotspot=HOTSPOT)
    return batch.numbers


def open_session(
    session: Session,
    card_number: str,
    ip: str,
    *,
    started_at: datetime = NOW - timedelta(hours=1),
    stopped_at: datetime | None = None,
    hotspot: str = HOTSPOT,
) -> Guest:
    """Activate the card (loading its value through the ledger) and insert a portal session holding ``ip``."""
    card = cards.find_card(session, card_number, lock=True)
    account_id = cards.activate(session, card, started_at)
    row = session.execute(
        text(
            """
            INSERT INTO sessions (status, account_id, card_id, hotspot_id, tariff_id, source, auth_token,
                                  framed_ip, started_at, last_seen_at, stopped_at)
            SELECT :status, :account_id, :card_id, h.id, h.tariff_id, 'portal', :token, :ip, :started_at,
                   coalesce(:stopped_at, :started_at), :stopped_at
            FROM hotspots h WHERE h.name = :hotspot
            RETURNING id
            """
        ),
        {
            "status": "open" if stopped_at is None else "closed",
            "account_id": account_id,
            "card_id": card.id,
            "token": f"flow-test-{next(_tokens)}",
            "ip": ip,
            "started_at": started_at,
            "stopped_at": stopped_at,
            "hotspot": hotspot,
        },
    ).one()
    return Guest(row.id, account_id, card.id)


def balance(session: Session, account_id: int) -> int:
    return int(session.execute(text("SELECT balance FROM accounts WHERE id = :a"), {"a": account_id}).scalar_one())


def traffic_debited(session: Session, account_id: int) -> int:
    """Minor units taken by traffic rows of the ledger (positive)."""
    return -int(
        session.execute(
            text("SELECT coalesce(sum(amount), 0) FROM ledger WHERE account_id = :a AND cause = 'traffic'"),
            {"a": account_id},
        ).scalar_one()
    )


def price(billable_bytes: int, price_per_mb: int = PRICE_PER_MB) -> int:
    """What the tariff charges for a session's cumulative billable bytes at one price: rounded up once."""
    return -(-billable_bytes * price_per_mb // MB)


def test_the_world_starts_balanced(db: Session, vault: PinVault) -> None:
    numbers = flow_world(db, vault)
    guest = open_session(db, numbers[0], "10.1.0.11")
    assert balance(db, guest.account_id) == 500
    assert_ledger_balanced(db)
