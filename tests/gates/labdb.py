"""The billing side of the gate labs: a standalone hotspot with one card, and the worker's real cycle."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import NamedTuple

from sqlalchemy import Engine, Row, text
from sqlalchemy.orm import Session

from rlm_hotspot.nas.gates import Gate
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services.access import Policy
from rlm_hotspot.worker.cycle import Worker
from tests.db import factories

HEARTBEAT_TIMEOUT_S = 30


class LabCard(NamedTuple):
    hotspot_id: int
    number: str
    pin: str


def standalone_card(engine: Engine, vault: PinVault, portal_url: str) -> LabCard:
    """A standalone hotspot (heartbeat timeout 30 s) and a 1.00 card at 1.20 per hour (50 minutes)."""
    with Session(engine) as session, session.begin():
        factories.tariff(session)
        hotspot_id = factories.hotspot(
            session,
            mode="standalone",
            traffic_meter="netflow",
            heartbeat_timeout=HEARTBEAT_TIMEOUT_S,
            portal_url=portal_url,
        )
        batch = factories.batch(session, vault, count=1, face_value=100, hotspot="cafe", now=datetime.now(UTC))
    return LabCard(hotspot_id, batch.numbers[0], batch.pins[0])


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    with Session(engine) as session, session.begin():
        yield session


def run_worker_cycle(engine: Engine, gate: Gate, at: datetime) -> None:
    """One cycle of `hotspotctl worker` with this gate as its gate closer, as if run at `at`."""
    Worker(
        transaction=lambda: transaction(engine), policy=Policy(), close_gate=gate.close, clock=lambda: at
    ).run_cycle()


def only_session(engine: Engine) -> Row:  # type: ignore[type-arg]
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT status, terminate_cause, auth_token, framed_ip, calling_station_id FROM sessions")
        ).one()
