"""BlastRADIUS (CVE-2024-3596) on Debian 12's FreeRADIUS 3.2.1: the one mitigation it has,
`require_message_authenticator` in each client block, written from the NAS table (docs/radius.md).

Driven with radclient from freeradius-utils, which adds a Message-Authenticator only when the request
names one (`Message-Authenticator = 0x00`, as radtest does); pyrad adds one by itself.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from rlm_hotspot.pins import PinVault
from rlm_hotspot.services import catalog
from tests.e2e.radius_harness import NAS_BY_VENDOR, SECRET, RadiusServer, build_world, radius_run

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("radclient") is None, reason="apt-get install freeradius-utils (radclient)"),
]

MISSING_LOG = "does not contain required Message-Authenticator"  # radiusd's line for a request it drops


def radclient_login(
    server: RadiusServer, number: str, pin: str, *, message_authenticator: bool, nas_ip: str
) -> str | None:
    """A PAP Access-Request sent by radclient (one retransmission): the answer's name, None for no answer."""
    request = [f'User-Name = "{number}"', f'User-Password = "{pin}"', f"NAS-IP-Address = {nas_ip}"]
    if message_authenticator:
        request.append("Message-Authenticator = 0x00")  # radclient fills in the HMAC
    result = subprocess.run(
        ["radclient", "-x", "-r", "2", "-t", "2", f"127.0.0.1:{server.auth_port}", "auth", server.secret],
        input="\n".join(request) + "\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    sent = result.stdout.split("Received", 1)[0]
    assert ("Message-Authenticator" in sent) == message_authenticator, result.stdout  # what radclient really sent
    answer = re.search(r"^Received (Access-\w+)", result.stdout, re.MULTILINE)
    return answer.group(1) if answer else None


def sessions_of(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM sessions")).scalar_one())


def test_by_default_a_request_without_message_authenticator_is_dropped_and_one_with_it_answered(
    radius_server: RadiusServer, radius_db: Engine, vault: PinVault
) -> None:
    """The test NAS has the realistic default (every e2e test's pyrad requests carry the attribute)."""
    batch = build_world(radius_db, vault)
    card = (batch.numbers[0], batch.pins[0])
    nas_ip = NAS_BY_VENDOR["mikrotik"]

    assert radclient_login(radius_server, *card, message_authenticator=False, nas_ip=nas_ip) is None
    assert MISSING_LOG in radius_server.log_text()
    assert sessions_of(radius_db) == 0  # dropped before billing saw it

    assert radclient_login(radius_server, *card, message_authenticator=True, nas_ip=nas_ip) == "Access-Accept"
    assert sessions_of(radius_db) == 1


def test_a_nas_set_not_to_require_it_is_answered_without_it(
    radius_db: Engine, radius_database: str, key_file: Path, vault: PinVault
) -> None:
    """Through the NAS table: `hotspotctl radius run` writes the NAS's client block with the setting off."""
    batch = build_world(radius_db, vault)
    with Session(radius_db) as session, session.begin():
        catalog.add_nas(
            session,
            name="legacy",
            hotspot="cafe",
            ip_address="127.0.0.1",
            secret=SECRET,
            coa_port=3799,
            vendor="generic",
            require_message_authenticator=False,
        )
    with radius_run(radius_database, key_file) as server:
        answer = radclient_login(
            server, batch.numbers[0], batch.pins[0], message_authenticator=False, nas_ip="127.0.0.1"
        )
        assert answer == "Access-Accept"
        assert MISSING_LOG not in server.log_text()
        assert "require_message_authenticator = no" in (server.confdir / "clients.conf").read_text()
