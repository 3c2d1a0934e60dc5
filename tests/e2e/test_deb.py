"""The Debian package as an ISP installs it: `make deb`, `dpkg -i` on this machine, hotspotctl from
/usr/bin, the secrets it creates, `radius install` into a copy of Debian's raddb that `freeradius -C`
accepts with the module loaded from the package's venv, then remove and purge — the PIN key survives both.

It changes this machine's package database and the build takes minutes (pip fetches the wheels), so it
runs only when asked: RLM_HOTSPOT_DEB_TEST=1 (RLM_HOTSPOT_DEB_FILE=<.deb> tests a package built already).
Everything it adds (the package, /etc/rlm-hotspot, the hotspot user and freerad's membership) is removed
again, and it refuses to run where rlm-hotspot or /etc/rlm-hotspot is there already.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from devtools.cluster import PrivateCluster
from rlm_hotspot.radius import config as radconf
from tests.e2e.radius_harness import RadiusServer, free_udp_ports

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("RLM_HOTSPOT_DEB_TEST") != "1",
        reason="installs a package on this machine and builds for minutes: set RLM_HOTSPOT_DEB_TEST=1",
    ),
]

CHECKOUT = Path(__file__).resolve().parents[2]
PACKAGE = "rlm-hotspot"
ETC = Path("/etc/rlm-hotspot")
VENV = Path("/usr/lib/rlm-hotspot/venv")
HOTSPOTCTL = Path("/usr/bin/hotspotctl")


def run(*args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, check=False, env={**os.environ, **env}
    )


def package_known() -> bool:
    """dpkg has the package installed, or its configuration files after a remove."""
    state = run("dpkg-query", "-W", "-f=${Status}", PACKAGE).stdout
    return state.endswith((" installed", " config-files")) and not state.endswith("not-installed")


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("RLM_HOTSPOT_DEB_FILE")
    if given:
        return Path(given)
    out = tmp_path_factory.mktemp("deb")
    built = run("make", "-C", CHECKOUT, "deb", f"DEB_OUT={out}")
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (package,) = out.glob(f"{PACKAGE}_*.deb")
    return package


@pytest.fixture(scope="module")
def installed(deb: Path) -> Iterator[Path]:
    """The package installed with dpkg; afterwards purged, with everything it left (by design) removed."""
    if os.geteuid() != 0:
        pytest.skip("installing a package needs root")
    if package_known() or ETC.exists():
        pytest.fail(f"{PACKAGE} or {ETC} is already on this machine: not touching someone's install")
    had_user = user_exists("hotspot")
    try:
        done = run("dpkg", "-i", deb)
        assert done.returncode == 0, done.stdout + done.stderr
        yield deb
    finally:
        if package_known():
            run("dpkg", "-P", PACKAGE)
        shutil.rmtree(ETC, ignore_errors=True)
        if not had_user and user_exists("hotspot"):
            if user_exists("freerad"):
                run("deluser", "--quiet", "freerad", "hotspot")
            run("deluser", "--quiet", "--system", "hotspot")
            run("delgroup", "--quiet", "--system", "hotspot")


def test_the_package_installs_hotspotctl_and_creates_the_secrets(installed: Path) -> None:
    assert HOTSPOTCTL.resolve() == VENV / "bin" / "hotspotctl"
    helped = run(HOTSPOTCTL, "--help")
    assert helped.returncode == 0 and "radius" in helped.stdout, helped.stderr
    driver = run(VENV / "bin" / "python", "-c", "import psycopg2; print(psycopg2.__file__)")
    assert driver.stdout.startswith("/usr/lib/python3/dist-packages/"), driver  # Debian's, not the -binary wheel
    hotspot_gid = grp.getgrnam("hotspot").gr_gid
    for name in ("hotspot.toml", "pin.keys", "portal.secret"):
        info = (ETC / name).stat()
        assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (0, hotspot_gid, 0o640), name
    if user_exists("freerad"):
        assert "freerad" in grp.getgrnam("hotspot").gr_mem  # the module reads the settings and the key
    for unit in ("hotspot-worker.service", "hotspot-portal@.service", "hotspot-flows@.service"):
        assert (Path("/lib/systemd/system") / unit).is_file(), unit


def test_radius_install_from_the_package_passes_freeradius_check(
    installed: Path, pg_cluster: PrivateCluster, raddb: Path
) -> None:
    pg_cluster.create_database("hotspot_deb")
    settings = raddb.parent / "hotspot.toml"
    settings.write_text(
        f'[database]\nurl = "{pg_cluster.url("hotspot_deb")}"\n[pins]\nkey_file = "{ETC / "pin.keys"}"\n'
    )
    settings.chmod(0o644)
    initialised = run(HOTSPOTCTL, "--config", settings, "db", "init", "--currency", "EUR")
    assert initialised.returncode == 0, initialised.stdout + initialised.stderr

    wired = run(HOTSPOTCTL, "--config", settings, "radius", "install", "--raddb", raddb)

    assert wired.returncode == 0, wired.stdout + wired.stderr
    assert "passed" in wired.stdout
    module = (raddb / "mods-available" / radconf.INSTANCE).read_text()
    assert f'python_path = "{VENV / radconf.SITE_PACKAGES}"' in module  # not this checkout's venv
    checked = run(radconf.RADIUSD, "-C", "-d", raddb)
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]


def test_debians_freeradius_as_freerad_logs_a_card_in_through_the_package(
    installed: Path, pg_cluster: PrivateCluster, raddb: Path
) -> None:
    """The ISP's path: settings and key where the package put them (read by freerad through the hotspot
    group), the module installed into Debian's configuration, radiusd started as Debian starts it."""
    pg_cluster.create_database("hotspot_deb_login")
    settings = raddb.parent / "hotspot.toml"
    settings.write_text(
        f'[database]\nurl = "{pg_cluster.url("hotspot_deb_login")}"\n[pins]\nkey_file = "{ETC / "pin.keys"}"\n'
    )
    settings.chmod(0o644)
    ctl = partial(run, HOTSPOTCTL, "--config", settings)
    for command in (
        ("db", "init", "--currency", "EUR"),
        ("tariff", "add", "standard", "--per-hour", "1.20"),
        ("hotspot", "add", "cafe", "--timezone", "UTC", "--tariff", "standard"),
        ("nas", "add", "lobby", "--hotspot", "cafe", "--ip", "127.0.0.1", "--secret", "testing123"),
    ):
        done = ctl(*command)
        assert done.returncode == 0, done.stdout + done.stderr
    generated = ctl("cards", "generate", "--count", "1", "--value", "5.00", "--hotspot", "cafe", "--show").stdout
    number, pin = re.findall(r"^(\d{4} \d{4} \d+)\s+([0-9A-Z]+)$", generated, re.MULTILINE)[0]
    auth_port, acct_port = free_udp_ports(2)
    wired = ctl("radius", "install", "--raddb", raddb, "--auth-port", str(auth_port), "--acct-port", str(acct_port))
    assert wired.returncode == 0, wired.stdout + wired.stderr
    # Debian's own servers would take 1812 and 18120 (a `make demo` may hold those): only ours listens (and
    # EAP, which needs them, goes too)
    for enabled in ("sites-enabled/default", "sites-enabled/inner-tunnel", "mods-enabled/eap"):
        (raddb / enabled).unlink()
    run_dir = raddb.parent / "run"
    run_dir.mkdir()
    shutil.chown(run_dir, "freerad", "freerad")
    conf = raddb / "radiusd.conf"
    conf.write_text(re.sub(r"(?m)^run_dir = .*$", f"run_dir = {run_dir}", conf.read_text()))

    log = raddb.parent / "radiusd.out"
    with log.open("wb") as output:  # as root: radiusd.conf's user/group (freerad) and their groups take over
        process = subprocess.Popen(
            [radconf.RADIUSD, "-f", "-xx", "-l", "stdout", "-d", str(raddb)], stdout=output, stderr=subprocess.STDOUT
        )
    server = RadiusServer(process, raddb, log, auth_port, acct_port, secret="testing123")
    try:
        deadline = time.monotonic() + 30
        while radconf.READY_LINE not in server.log_text():
            assert process.poll() is None and time.monotonic() < deadline, server.log_text()[-3000:]
            time.sleep(0.1)
        accepted = server.login(number.replace(" ", ""), pin, nas_ip="127.0.0.1")
        refused = server.login(number.replace(" ", ""), "WRONG", nas_ip="127.0.0.1")
    finally:
        server.stop()
    assert accepted.accepted, server.log_text()[-3000:]
    assert 0 < accepted.one("Session-Timeout") <= 5 * 3600  # 5.00 at 1.20 per hour
    assert not refused.accepted


def test_reinstall_keeps_the_key_remove_keeps_settings_purge_keeps_only_the_key(installed: Path) -> None:
    key = (ETC / "pin.keys").read_text()
    (ETC / "hotspot.toml").write_text((ETC / "hotspot.toml").read_text() + "# edited by the admin\n")
    again = run("dpkg", "-i", "--force-confold", installed)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (ETC / "pin.keys").read_text() == key
    assert "# edited by the admin" in (ETC / "hotspot.toml").read_text()

    removed = run("dpkg", "-r", PACKAGE)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert not HOTSPOTCTL.exists() and not VENV.exists()
    assert (ETC / "hotspot.toml").is_file() and (ETC / "pin.keys").read_text() == key

    purged = run("dpkg", "-P", PACKAGE)
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert "kept the PIN key file" in purged.stdout
    assert sorted(p.name for p in ETC.iterdir()) == ["pin.keys"]
    assert (ETC / "pin.keys").read_text() == key
    assert not package_known()


def test_purge_deletes_the_key_only_when_told(installed: Path) -> None:
    reinstalled = run("dpkg", "-i", installed)
    assert reinstalled.returncode == 0, reinstalled.stdout + reinstalled.stderr
    purged = run("dpkg", "-P", PACKAGE, RLM_HOTSPOT_PURGE_KEYS="yes")
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert not ETC.exists()
