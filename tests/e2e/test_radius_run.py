"""`hotspotctl radius run` itself: the development radiusd it starts serves card logins."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from rlm_hotspot.pins import PinVault
from tests.e2e.radius_harness import NAS_BY_VENDOR, build_world, radius_run


def test_hotspotctl_radius_run_serves_logins(
    radius_db: Engine, radius_database: str, key_file: Path, vault: PinVault
) -> None:
    batch = build_world(radius_db, vault)
    with radius_run(radius_database, key_file) as server:
        reply = server.login(batch.numbers[0], batch.pins[0], nas_ip=NAS_BY_VENDOR["mikrotik"])
        assert reply.accepted, reply
        assert int(reply.one("Session-Timeout")) > 0  # type: ignore[call-overload]
        assert not server.login(batch.numbers[1], "WRONGPIN9", nas_ip=NAS_BY_VENDOR["mikrotik"]).accepted
