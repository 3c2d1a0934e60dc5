"""radiusd runs as nobody (freerad when installed), who cannot reach a checkout or venv under a 0700 directory
(root's home, a `mktemp -d`): a private config dir then gets a copy of the code and the venv, and logins
work; `radius install` into an ISP's raddb says who cannot read what."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from rlm_hotspot.cli.main import cli
from rlm_hotspot.pins import PinVault
from rlm_hotspot.radius import config as radconf
from tests.e2e.radius_harness import NAS_BY_VENDOR, RUN_AS, build_world, shared_dir, start_radiusd, write_settings


@pytest.fixture
def private_venv() -> Iterator[Path]:
    """The test run's packages in a venv under a 0700 directory, like root's home."""
    if shutil.which(radconf.RADIUSD) is None:
        pytest.skip("freeradius is not installed (apt-get install freeradius freeradius-python3)")
    if os.geteuid() != 0:
        pytest.skip("as anyone but root, radiusd runs as them and reaches what they reach")
    private_home = Path(tempfile.mkdtemp(prefix="hotspot-home-"))
    venv = radconf.stage_python(private_home / "venv", Path(sys.prefix))
    assert radconf.unreadable_by(RUN_AS, [venv / radconf.SITE_PACKAGES])
    yield venv
    shutil.rmtree(private_home, ignore_errors=True)


def test_radiusd_serves_from_a_venv_its_user_cannot_reach(
    radius_db: Engine, radius_database: str, key_file: Path, vault: PinVault, private_venv: Path
) -> None:
    venv = private_venv
    batch = build_world(radius_db, vault)
    workdir = shared_dir("hotspot-radius-home-")
    server = start_radiusd(workdir, write_settings(workdir, radius_database, key_file), venv=venv)
    try:
        module = (server.confdir / "mods-available" / radconf.INSTANCE).read_text()
        staged = server.confdir / radconf.STAGED_PYTHON
        assert f'python_path = "{staged / radconf.SITE_PACKAGES}"' in module
        assert f'venv = "{staged}"' in module
        assert server.login(batch.numbers[0], batch.pins[0], nas_ip=NAS_BY_VENDOR["mikrotik"]).accepted
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def test_install_says_who_cannot_read_the_venv(
    raddb: Path, radius_database: str, key_file: Path, private_venv: Path
) -> None:
    settings = write_settings(raddb.parent, radius_database, key_file)
    before = sorted(raddb.rglob("*"))
    command = ["--config", str(settings), "radius", "install", "--raddb", str(raddb), "--venv", str(private_venv)]

    result = CliRunner().invoke(cli, command)

    assert result.exit_code == 1
    assert f"radiusd runs as freerad, who cannot read {private_venv}" in result.output
    assert sorted(raddb.rglob("*")) == before
