"""The Debian package as an ISP installs it: `make deb`, `apt install ./….deb` on this machine,
`hotspotctl radius install` into Debian's own /etc/freeradius/3.0, Debian's `freeradius` run on that
configuration as its unit runs it (as freerad) logs a card in through radclient; removing the package puts FreeRADIUS's
configuration back byte for byte, and remove and purge keep the PIN key.

It changes this machine (its package database, /etc/freeradius/3.0 for a minute) and so runs only when
asked: RLM_HOTSPOT_DEB_TEST=1, which `make test` sets (`make test DEB=0` leaves it out), as root. The
package is built in the background from the start of the run (tests/e2e/deb_build.py). freeradius runs in a
network namespace of its own, so Debian's sites (1812, 1813, 18120) clash with nothing, `make demo`'s
radiusd included, and no listen port of Debian's configuration is changed. Everything it adds (the package,
/etc/rlm-hotspot, the hotspot user and freerad's membership, the radiusd it starts) is gone afterwards, which
the teardown checks; it refuses to run where rlm-hotspot or any trace of it is there already.
"""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from devtools.cluster import PrivateCluster
from devtools.ha import free_tcp_ports
from rlm_hotspot.radius import config as radconf
from tests.e2e.radius_harness import free_udp_ports

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("RLM_HOTSPOT_DEB_TEST") != "1",
        reason="installs a package on this machine: set RLM_HOTSPOT_DEB_TEST=1 (make test does)",
    ),
]

PACKAGE = "rlm-hotspot"
ETC = Path("/etc/rlm-hotspot")
LIB = Path("/usr/lib/rlm-hotspot")
VENV = LIB / "venv"
HOTSPOTCTL = Path("/usr/bin/hotspotctl")
RADDB = radconf.SYSTEM_RADDB
SECRET = "testing123"  # Debian's clients.conf: client localhost
UNIT_DIR = Path("/lib/systemd/system")
UNITS = (
    "hotspot-worker.service",
    "hotspot-portal@.service",
    "hotspot-flows@.service",
    "hotspot-console.service",
    "hotspot-radius-import.service",
)
APT = ("apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=300")  # waits while another session installs packages


# The package's own processes read /etc/rlm-hotspot/hotspot.toml, as on an ISP's host (the suite points
# HOTSPOT_CONFIG elsewhere for every other test: tests/conftest.py).
AS_INSTALLED = {name: value for name, value in os.environ.items() if name != "HOTSPOT_CONFIG"}


def run(*args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        check=False,
        env={**AS_INSTALLED, "DEBIAN_FRONTEND": "noninteractive", **env},
    )


def package_known() -> bool:
    """dpkg has the package installed, or its configuration files after a remove."""
    state = run("dpkg-query", "-W", "-f=${Status}", PACKAGE).stdout
    return state.endswith((" installed", " config-files")) and not state.endswith("not-installed")


def installed_packages() -> set[str]:
    listed = run("dpkg-query", "-W", "-f=${db:Status-Abbrev} ${Package}\n").stdout
    return {line.split()[1] for line in listed.splitlines() if line.startswith("ii")}


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def tree_digest(root: Path) -> str:
    """Every path under root with its type, owner, mode and content (or link target)."""
    digest = hashlib.sha256()
    for path in sorted([root, *root.rglob("*")]):
        info = path.lstat()
        digest.update(f"{path.relative_to(root)}\0{info.st_mode:o}\0{info.st_uid}\0{info.st_gid}\0".encode())
        if path.is_symlink():
            digest.update(str(path.readlink()).encode())
        elif path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Machine:
    """What the machine looked like before the package came, to check it looks so again afterwards."""

    raddb: str
    had_hotspot_user: bool


def refuse_a_machine_with_rlm_hotspot() -> None:
    """Someone's install (or a previous run's remains) is never touched: say what is there and stop."""
    traces = [str(p) for p in (ETC, LIB) if p.exists()] + [
        str(RADDB / relative) for relative in radconf.OUR_FILES if (RADDB / relative).exists()
    ]
    if package_known():
        traces.insert(0, f"the package {PACKAGE}")
    if traces:
        pytest.fail(
            f"rlm-hotspot is on this machine already ({', '.join(traces)}): not touching someone's install. "
            "Remove it, or run the tests without this one (make test DEB=0)."
        )


@pytest.fixture(scope="module")
def machine(deb: Path) -> Iterator[Machine]:
    """The package installed with apt; afterwards purged, with everything it left (by design) removed, and
    checked: no package, no files of it, no user it made, FreeRADIUS's configuration as it was."""
    if os.geteuid() != 0:
        pytest.skip("installing a package needs root")
    if not RADDB.is_dir():
        pytest.skip(f"Debian's freeradius is not installed ({RADDB} is missing)")
    refuse_a_machine_with_rlm_hotspot()
    before = Machine(tree_digest(RADDB), user_exists("hotspot"))
    packages = installed_packages()
    try:
        done = run(*APT, "install", deb)
        assert done.returncode == 0, done.stdout + done.stderr
        assert installed_packages() - packages == {PACKAGE}, "apt installed more than the package"
        yield before
    finally:
        leave_nothing_behind(before)


def leave_nothing_behind(before: Machine) -> None:
    if package_known():
        run(*APT, "purge", PACKAGE, RLM_HOTSPOT_PURGE_KEYS="yes")
    radconf.uninstall(RADDB)  # in case the package's removal did not (a test failed already, then)
    run("rm", "-rf", ETC)
    if not before.had_hotspot_user and user_exists("hotspot"):
        run("deluser", "--quiet", "--system", "hotspot")
        run("delgroup", "--quiet", "--system", "hotspot")  # freerad's membership goes with the group
    left = [str(p) for p in (ETC, LIB, HOTSPOTCTL) if p.exists() or p.is_symlink()]
    left += ["the package"] if package_known() else []
    left += ["the hotspot user"] if user_exists("hotspot") and not before.had_hotspot_user else []
    left += [f"changes in {RADDB}"] if tree_digest(RADDB) != before.raddb else []
    assert not left, f"left behind: {', '.join(left)}"


def test_the_package_installs_hotspotctl_and_creates_the_secrets(machine: Machine) -> None:
    assert HOTSPOTCTL.resolve() == VENV / "bin" / "hotspotctl"
    helped = run(HOTSPOTCTL, "--help")
    assert helped.returncode == 0 and "radius" in helped.stdout, helped.stderr
    driver = run(VENV / "bin" / "python", "-c", "import psycopg2; print(psycopg2.__file__)")
    assert driver.stdout.startswith("/usr/lib/python3/dist-packages/"), driver  # Debian's, not the -binary wheel
    hotspot_gid = grp.getgrnam("hotspot").gr_gid
    for name in ("hotspot.toml", "pin.keys", "portal.secret", "console.secret"):
        info = (ETC / name).stat()
        assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (0, hotspot_gid, 0o640), name
    assert "freerad" in grp.getgrnam("hotspot").gr_mem  # the module reads the settings and the key
    for unit in UNITS:
        assert (UNIT_DIR / unit).is_file(), unit


def test_debians_freeradius_as_freerad_logs_a_card_in_with_radclient(
    machine: Machine, pg_cluster: PrivateCluster, tmp_path: Path
) -> None:
    """The ISP's path: the database URL edited into the package's settings file (read by freerad through the
    hotspot group), `radius install` into /etc/freeradius/3.0, radiusd started as Debian's unit starts it."""
    pg_cluster.create_database("hotspot_deb")
    settings = ETC / "hotspot.toml"
    settings.write_text(
        re.sub(r'(?m)^url = ".*"$', f'url = "{pg_cluster.url("hotspot_deb")}"', settings.read_text(), count=1)
    )
    ctl = partial(run, HOTSPOTCTL)  # --config: /etc/rlm-hotspot/hotspot.toml by default
    for command in (
        ("db", "init", "--currency", "EUR"),
        ("tariff", "add", "standard", "--per-hour", "1.20"),
        ("hotspot", "add", "cafe", "--timezone", "UTC", "--tariff", "standard"),
        ("nas", "add", "lobby", "--hotspot", "cafe", "--ip", "127.0.0.1", "--secret", SECRET),
    ):
        done = ctl(*command)
        assert done.returncode == 0, done.stdout + done.stderr
    generated = ctl("cards", "generate", "--count", "1", "--value", "5.00", "--hotspot", "cafe", "--show").stdout
    number, pin = re.findall(r"^(\d{4} \d{4} \d+)\s+([0-9A-Z]+)$", generated, re.MULTILINE)[0]
    auth_port, acct_port = free_udp_ports(2)
    wired = ctl("radius", "install", "--raddb", RADDB, "--auth-port", str(auth_port), "--acct-port", str(acct_port))
    assert wired.returncode == 0, wired.stdout + wired.stderr
    module = (RADDB / "mods-available" / radconf.INSTANCE).read_text()
    assert f'python_path = "{VENV / radconf.SITE_PACKAGES}"' in module  # the package's venv, not a checkout's

    probe = run("unshare", "--net", "true")  # the raddb stays wired: the removal test still has work to do
    if probe.returncode != 0:  # a container without CAP_SYS_ADMIN, as the gate lab's tests
        pytest.skip(f"no network namespace for Debian's freeradius: {probe.stderr.strip()}")
    with Radiusd(tmp_path / "radiusd.out") as server:
        assert server.user() == "freerad"
        accepted = server.radclient(auth_port, number.replace(" ", ""), pin)
        refused = server.radclient(auth_port, number.replace(" ", ""), "WRONG")
    assert "Received Access-Accept" in accepted, accepted + server.log()
    timeout = int(re.search(r"Session-Timeout = (\d+)", accepted).group(1))  # type: ignore[union-attr]
    assert 0 < timeout <= 5 * 3600  # 5.00 at 1.20 per hour
    assert "Received Access-Reject" in refused, refused


def test_the_console_starts_as_its_unit_starts_it(machine: Machine) -> None:
    """hotspot-console.service's own command line, user and settings (the secret the package made): the
    sign-in page is served, with the console's strict policy. Runs after the radclient test, whose database
    the settings name."""
    unit = (UNIT_DIR / "hotspot-console.service").read_text()
    user = re.search(r"(?m)^User=(\S+)$", unit).group(1)  # type: ignore[union-attr]
    config = re.search(r"(?m)^Environment=HOTSPOT_CONFIG=(\S+)$", unit).group(1)  # type: ignore[union-attr]
    command = re.search(r"(?m)^ExecStart=(.+)$", unit).group(1).split()  # type: ignore[union-attr]
    (port,) = free_tcp_ports(1)
    command[command.index("--bind") + 1] = f"127.0.0.1:{port}"
    as_user = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"]
    # cwd: systemd's; gunicorn changes to the directory it was started in, which `hotspot` may not enter
    console = subprocess.Popen(
        [*as_user, *command, "--plain-http"], env={**AS_INSTALLED, "HOTSPOT_CONFIG": config},
        cwd="/", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline, page = time.monotonic() + 30, None
        while page is None:
            if console.poll() is not None or time.monotonic() > deadline:
                console.kill()
                pytest.fail("the console did not start:\n" + console.communicate()[0].decode(errors="replace"))
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5)
            except OSError:
                time.sleep(0.2)
        assert page.status == 200 and 'id="password"' in page.read().decode()
        assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    finally:
        console.terminate()
        output = console.communicate(timeout=30)[0].decode(errors="replace")
    assert console.returncode == 0, output


class Radiusd:
    """Debian's freeradius on /etc/freeradius/3.0 as its systemd unit runs it (`-f`, User=freerad with its
    groups), in a network namespace of its own, where radclient joins it."""

    def __init__(self, log: Path) -> None:
        self.log_file = log
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Radiusd:
        as_freerad = "setpriv --reuid=freerad --regid=freerad --init-groups"
        start = f"ip link set lo up && exec {as_freerad} {radconf.RADIUSD} -f -xx -l stdout -d {RADDB}"
        with self.log_file.open("wb") as output:  # unshare, sh and setpriv exec: the PID is radiusd's
            self.process = subprocess.Popen(
                ["unshare", "--net", "--", "sh", "-c", start], stdout=output, stderr=subprocess.STDOUT, env=AS_INSTALLED
            )
        deadline = time.monotonic() + 30
        try:
            while radconf.READY_LINE not in self.log():
                assert self.process.poll() is None and time.monotonic() < deadline, self.log()[-3000:]
                time.sleep(0.1)
        except BaseException:  # `with` calls __exit__ only after __enter__ returned
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop exactly the radiusd we started."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def user(self) -> str:
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        uid = int(re.search(r"^Uid:\s+(\d+)\s+(\d+)", status, re.MULTILINE).group(2))  # type: ignore[union-attr]
        return pwd.getpwuid(uid).pw_name

    def radclient(self, port: int, user: str, password: str) -> str:
        """An Access-Request with PAP from Debian's radclient, inside radiusd's namespace; its output."""
        assert self.process is not None
        enter = ("nsenter", f"--target={self.process.pid}", "--net")
        sent = subprocess.run(
            [*enter, "radclient", "-x", "-r", "1", "-t", "5", f"127.0.0.1:{port}", "auth", SECRET],
            input=f'User-Name = "{user}"\nUser-Password = "{password}"\nNAS-IP-Address = 127.0.0.1\n',
            capture_output=True,
            text=True,
            check=False,
        )
        return sent.stdout + sent.stderr


def test_removing_the_package_puts_freeradius_back_as_it_was(machine: Machine) -> None:
    removed = run(*APT, "remove", PACKAGE)

    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert f"removed {RADDB}/mods-enabled/{radconf.INSTANCE}" in removed.stdout, removed.stdout
    assert tree_digest(RADDB) == machine.raddb
    checked = run(radconf.RADIUSD, "-C", "-d", RADDB)
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
    assert not HOTSPOTCTL.exists() and not VENV.exists()


def test_reinstall_keeps_the_key_and_settings_remove_keeps_them_purge_keeps_only_the_key(
    machine: Machine, deb: Path
) -> None:
    key = (ETC / "pin.keys").read_text()
    (ETC / "hotspot.toml").write_text((ETC / "hotspot.toml").read_text() + "# edited by the admin\n")
    again = run(*APT, "-o", "Dpkg::Options::=--force-confold", "install", deb)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (ETC / "pin.keys").read_text() == key
    assert "# edited by the admin" in (ETC / "hotspot.toml").read_text()

    removed = run(*APT, "remove", PACKAGE)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert "has nothing of rlm_hotspot" in removed.stdout  # radius install was not run again
    assert not HOTSPOTCTL.exists() and not VENV.exists()
    assert (ETC / "hotspot.toml").is_file() and (ETC / "pin.keys").read_text() == key

    purged = run(*APT, "purge", PACKAGE)
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert "kept the PIN key file" in purged.stdout
    assert sorted(p.name for p in ETC.iterdir()) == ["pin.keys"]
    assert (ETC / "pin.keys").read_text() == key
    assert not package_known()


def test_purge_deletes_the_key_only_when_told(machine: Machine, deb: Path) -> None:
    reinstalled = run(*APT, "install", deb)
    assert reinstalled.returncode == 0, reinstalled.stdout + reinstalled.stderr
    purged = run(*APT, "purge", PACKAGE, RLM_HOTSPOT_PURGE_KEYS="yes")
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert not ETC.exists() and not LIB.exists()
    assert tree_digest(RADDB) == machine.raddb
