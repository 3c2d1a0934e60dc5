"""A real radiusd with rlm_hotspot for end-to-end tests, and a pyrad stand-in NAS to talk to it.

`start_radiusd` writes a private config dir (the same code as `hotspotctl radius run`), starts
`freeradius -f -xx` (threaded, as in production) as nobody on free loopback ports and waits until it is
ready; `RadiusServer.stop` signals only that PID. The fixtures at the end give a session-wide server on
its own database of the private test cluster (so its tariff cache never sees a recycled id): reuse them
through tests/e2e/conftest.py.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.request import urlopen

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pyrad import packet
from pyrad.client import Client, Timeout
from pyrad.dictionary import Dictionary
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from devtools.cluster import PrivateCluster
from devtools.ha import free_tcp_ports
from rlm_hotspot.pins import PinVault
from rlm_hotspot.radius import config as radconf
from rlm_hotspot.services import catalog
from rlm_hotspot.services.cards import GeneratedBatch
from tests.conftest import TABLES_TO_EMPTY, prepare_database
from tests.db import factories

SECRET = "e2e-secret"
RUN_AS = "nobody"
DICTIONARY = Dictionary(str(Path(__file__).with_name("radius.dictionary")))
STATUS = {"start": 1, "stop": 2, "interim": 3, "on": 7, "off": 8}


def free_udp_ports(count: int) -> list[int]:
    """Distinct high UDP ports on 127.0.0.1 that nothing is bound to (never the demo's 18120/18130)."""
    sockets = []
    try:
        while len(sockets) < count:
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            probe.bind(("127.0.0.1", 0))
            if probe.getsockname()[1] < 20000:
                probe.close()
                continue
            sockets.append(probe)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def shared_dir(prefix: str) -> Path:
    """A temporary directory the unprivileged radiusd can read (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def write_settings(workdir: Path, database_url: str, key_file: Path, *, metrics_port: int = 0, **security: int) -> Path:
    """The settings file radiusd's module reads, with a copy of the PIN keys it can read; the module serves
    metrics only when given a `metrics_port` (never the production default, which tests must not take)."""
    keys = workdir / "pin.keys"
    shutil.copyfile(key_file, keys)
    keys.chmod(0o644)
    lines = [
        "[database]",
        f'url = "{database_url}"',
        "statement_timeout_ms = 2000",
        "connect_timeout_s = 1",
        "[pins]",
        f'key_file = "{keys}"',
        "[security]",
        *(f"{name} = {value}" for name, value in security.items()),
        "[radius]",
        f"metrics_port = {metrics_port}",
    ]
    settings = workdir / "hotspot.toml"
    settings.write_text("\n".join(lines) + "\n")
    settings.chmod(0o644)
    return settings


@dataclass
class Reply:
    """A RADIUS answer, decoded with the test dictionary (attribute name -> list of values)."""

    code: int
    attributes: dict[str, list[object]] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return self.code == packet.AccessAccept

    def one(self, name: str) -> object:
        values = self.attributes.get(name, [])
        assert len(values) == 1, f"{name}: expected one value, got {values}"
        return values[0]


@dataclass
class RadiusServer:
    """A running radiusd and a stand-in NAS sending it requests over real UDP."""

    process: subprocess.Popen[bytes]
    confdir: Path
    log: Path
    auth_port: int
    acct_port: int
    secret: str = SECRET
    metrics_port: int = 0  # where the module serves its metrics (0: not served)
    importer_metrics_port: int = 0  # where the importer billing its spool serves its own (0: none runs)

    @property
    def spool(self) -> Path:
        """The directory radiusd's hotspot_buffer module writes buffer.detail into (buffered accounting)."""
        return self.confdir / "log" / "radacct" / "hotspot"

    def client(self, timeout: float = 2.0, retries: int = 1) -> Client:
        client = Client(
            server="127.0.0.1",
            authport=self.auth_port,
            acctport=self.acct_port,
            secret=self.secret.encode(),
            dict=DICTIONARY,
        )
        client.timeout, client.retries = timeout, retries
        return client

    def login(
        self,
        user: str,
        pin: str,
        *,
        chap: bool = False,
        chap_challenge: bool = True,
        nas_ip: str,
        timeout: float = 2.0,
        **attributes: object,
    ) -> Reply:
        """An Access-Request with PAP (User-Password) or CHAP (CHAP-Password + CHAP-Challenge; without
        `chap_challenge`, the Request Authenticator is the challenge, as RFC 2865 allows)."""
        request = self.login_request(user, pin, chap=chap, chap_challenge=chap_challenge, nas_ip=nas_ip, **attributes)
        return decoded(self.client(timeout=timeout).SendPacket(request))

    def login_request(
        self, user: str, pin: str, *, chap: bool = False, chap_challenge: bool = True, nas_ip: str, **attributes: object
    ) -> packet.AuthPacket:
        """The Access-Request `login` sends: sent again unchanged, it is a retransmit (same id, same
        authenticator)."""
        request = self.client().CreateAuthPacket(code=packet.AccessRequest, User_Name=user, NAS_IP_Address=nas_ip)
        for name, value in attributes.items():
            request[name.replace("_", "-")] = value
        if chap:
            chap_id = os.urandom(1)
            if chap_challenge:
                challenge = request["CHAP-Challenge"] = os.urandom(16)
            else:
                challenge = request.authenticator = request.CreateAuthenticator()
            request["CHAP-Password"] = chap_id + hashlib.md5(chap_id + pin.encode() + challenge).digest()
        else:
            request["User-Password"] = request.PwCrypt(pin)
        return request

    def account(self, status: str, *, nas_ip: str | None, timeout: float = 2.0, **attributes: object) -> Reply | None:
        """An Accounting-Request; None when radiusd sends no Accounting-Response (the hook did not say OK)."""
        request = self.account_request(status, nas_ip=nas_ip, **attributes)
        try:
            return decoded(self.client(timeout=timeout, retries=1).SendPacket(request))
        except Timeout:
            return None

    def account_request(self, status: str, *, nas_ip: str | None, **attributes: object) -> packet.AcctPacket:
        """The Accounting-Request `account` sends (sent again unchanged: a retransmit)."""
        request = self.client().CreateAcctPacket(Acct_Status_Type=STATUS[status])
        if nas_ip is not None:
            request["NAS-IP-Address"] = nas_ip
        for name, value in attributes.items():
            request[name.replace("_", "-")] = value
        return request

    def metrics(self) -> Scrape:
        """One scrape of the module's metrics."""
        return scrape(self.metrics_port)

    def importer_metrics(self) -> Scrape:
        """One scrape of the metrics of the importer that bills this server's spool."""
        return scrape(self.importer_metrics_port)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def importer_log_text(self) -> str:
        """What the importers of this server's spool logged (they bill buffered accounting)."""
        log = self.confdir.parent / "importer.out"
        return log.read_text(errors="replace") if log.exists() else ""

    def stop(self) -> None:
        """Stop exactly the radiusd we started (setpriv execs, so the PID is radiusd's)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


Scrape = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Scrape:
    """One scrape of a Prometheus endpoint on 127.0.0.1: (sample name, labels) -> value."""
    with urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@contextmanager
def importer(server: RadiusServer, batch_size: int = 2000, metrics_port: int = 0) -> Iterator[subprocess.Popen[bytes]]:
    """`hotspotctl radius import` on the server's spool, stopped (SIGTERM to its own PID) afterwards."""
    process = start_importer(server, batch_size, metrics_port)
    try:
        if metrics_port:
            _wait_for_metrics(process, metrics_port, server.confdir.parent / "importer.out")
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=15)


def _wait_for_metrics(process: subprocess.Popen[bytes], port: int, log: Path, timeout: float = 30.0) -> None:
    """Until the importer serves its metrics; fail the test with its log if it dies or dawdles."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the importer does not serve its metrics:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.05)


def importer_command(settings: Path, spool: Path, *options: str) -> list[str]:
    """`hotspotctl radius import` of `spool` with the settings file `settings` and `options`."""
    hotspotctl = str(Path(sys.executable).with_name("hotspotctl"))
    return [hotspotctl, "--config", str(settings), "radius", "import", "--spool", str(spool), *options]


def start_importer(server: RadiusServer, batch_size: int, metrics_port: int = 0) -> subprocess.Popen[bytes]:
    command = importer_command(
        server.confdir.parent / "hotspot.toml", server.spool, "--batch-size", str(batch_size),
        "--metrics-port", str(metrics_port),
    )  # fmt: skip
    with (server.confdir.parent / "importer.out").open("ab") as log:  # importer_log_text
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def decoded(reply: packet.Packet) -> Reply:
    return Reply(reply.code, {str(name): list(reply[name]) for name in reply.keys()})  # noqa: SIM118 - pyrad API


def start_radiusd(
    workdir: Path,
    settings_file: Path,
    timeout: float = 30.0,
    *,
    buffered: bool = False,
    venv: Path | None = None,
    metrics_port: int = 0,
) -> RadiusServer:
    """Write a private config dir under `workdir` and start radiusd as nobody (with the packages of `venv`,
    by default the test run's); wait until it serves (`metrics_port`: the one the settings file names)."""
    auth_port, acct_port = free_udp_ports(2)
    confdir = radconf.write_private_confdir(
        workdir / "radius",
        settings_file=settings_file,
        listen=radconf.Listen(auth_port, acct_port, "127.0.0.1"),
        clients=[radconf.Client("test-nas", "127.0.0.1", SECRET)],
        owner=RUN_AS,
        venv=venv,
        buffered=buffered,
    )
    log = workdir / "radiusd.out"
    server = RadiusServer(_launch(confdir, log), confdir, log, auth_port, acct_port, metrics_port=metrics_port)
    return _serving(server, timeout)


def start_again(server: RadiusServer, timeout: float = 30.0) -> RadiusServer:
    """The stopped (or killed) radiusd of `start_radiusd` started again as systemd restarts it: the same config
    dir, ports and spool; what it logged before is kept in <log>.<n>."""
    assert server.process.poll() is not None, "stop it first"
    earlier = len(list(server.log.parent.glob(f"{server.log.name}.*")))
    server.log.rename(server.log.with_name(f"{server.log.name}.{earlier + 1}"))
    return _serving(replace(server, process=_launch(server.confdir, server.log)), timeout)


def _launch(confdir: Path, log: Path) -> subprocess.Popen[bytes]:
    """radiusd on `confdir` as RUN_AS, threaded as in production, in a session of its own."""
    with log.open("wb") as output:
        command = radconf.radiusd_command(confdir, user=RUN_AS, threaded=True)
        return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)


@contextmanager
def radius_run(database_url: str, key_file: Path, timeout: float = 30.0) -> Iterator[RadiusServer]:
    """`hotspotctl radius run` itself, threaded, in a directory of its own (removed afterwards): its
    clients.conf comes from the NAS table (plus 127.0.0.1 with SECRET when no NAS has that address)."""
    if shutil.which(radconf.RADIUSD) is None:
        pytest.skip("freeradius is not installed (apt-get install freeradius freeradius-python3)")
    workdir = shared_dir("hotspot-radius-run-")
    try:
        server = _start_radius_run(workdir, write_settings(workdir, database_url, key_file), timeout)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _start_radius_run(workdir: Path, settings_file: Path, timeout: float) -> RadiusServer:
    auth_port, acct_port = free_udp_ports(2)
    command = [
        str(Path(sys.executable).with_name("hotspotctl")),
        "--config", str(settings_file),
        "radius", "run", "--threaded",
        "--confdir", str(workdir / "radius"),
        "--auth-port", str(auth_port), "--acct-port", str(acct_port),
        "--local-secret", SECRET,
    ]  # fmt: skip
    log = workdir / "run.out"
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
                                   env={**os.environ, "HOTSPOT_CONFIG": os.devnull})  # fmt: skip
    return _serving(RadiusServer(process, workdir / "radius", log, auth_port, acct_port), timeout)


def _serving(server: RadiusServer, timeout: float) -> RadiusServer:
    """Wait until radiusd says it is ready; stop it and fail the test with its log if it dies or dawdles."""
    deadline = time.monotonic() + timeout
    while radconf.READY_LINE not in server.log_text():
        if server.process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            pytest.fail(f"radiusd did not start:\n{server.log_text()[-3000:]}")
        time.sleep(0.05)
    return server


# -- fixtures (a plugin of tests/conftest.py) -------------------------------------------------------------


@pytest.fixture(scope="session")
def radius_database(pg_cluster: PrivateCluster) -> str:
    """A database of its own for the radiusd tests: ids are never recycled under its tariff cache."""
    return prepare_database(pg_cluster, "hotspot_radius")


@pytest.fixture(scope="session")
def radius_engine(radius_database: str) -> Iterator[Engine]:
    engine = create_engine(radius_database, pool_size=5)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def radius_server(radius_database: str, key_file: Path) -> Iterator[RadiusServer]:
    """radiusd with rlm_hotspot for the whole test session (lockout after 3 wrong PINs)."""
    if shutil.which(radconf.RADIUSD) is None:
        pytest.skip("freeradius is not installed (apt-get install freeradius freeradius-python3)")
    workdir = shared_dir("hotspot-radius-")
    [metrics_port] = free_tcp_ports(1)
    settings = write_settings(workdir, radius_database, key_file, metrics_port=metrics_port, lockout_attempts=3)
    server = start_radiusd(workdir, settings, metrics_port=metrics_port)
    yield server
    server.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def buffered_radius_server(radius_database: str, key_file: Path) -> Iterator[RadiusServer]:
    """A second radiusd on the same database, with buffered accounting (detail file, then billing), and the
    importer billing its spool for the whole session, both serving their metrics."""
    if shutil.which(radconf.RADIUSD) is None:
        pytest.skip("freeradius is not installed (apt-get install freeradius freeradius-python3)")
    workdir = shared_dir("hotspot-radius-buffered-")
    metrics_port, importer_port = free_tcp_ports(2)
    settings = write_settings(workdir, radius_database, key_file, metrics_port=metrics_port)
    server = start_radiusd(workdir, settings, buffered=True, metrics_port=metrics_port)
    server.importer_metrics_port = importer_port
    try:
        with importer(server, metrics_port=importer_port):
            yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def spooling_radius_server(radius_database: str, key_file: Path) -> Iterator[RadiusServer]:
    """A radiusd on the same database that only writes accounting to its detail file and answers: the
    importer (`hotspotctl radius import`, started by each test) bills it."""
    if shutil.which(radconf.RADIUSD) is None:
        pytest.skip("freeradius is not installed (apt-get install freeradius freeradius-python3)")
    workdir = shared_dir("hotspot-radius-spooling-")
    settings = write_settings(workdir, radius_database, key_file)
    server = start_radiusd(workdir, settings, buffered=True)
    yield server
    server.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def radius_db(radius_engine: Engine) -> Iterator[Engine]:
    """The radiusd database, emptied after the test (identities go on, so cached ids stay true)."""
    yield radius_engine
    with radius_engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {TABLES_TO_EMPTY} CASCADE"))


def login_happened_earlier(engine: Engine, seconds: int, numbers: Sequence[str] | None = None) -> None:
    """Move the logins that await their Start (of the cards `numbers`, default all) `seconds` into the past.

    Online time is bounded by the wall clock since the login: a test that reports ten minutes of a
    session does so as a NAS that reports late would, with its packets' Acct-Delay-Time saying when
    they were sent, after a login that happened that long ago.
    """
    only = "" if numbers is None else " AND card_id IN (SELECT id FROM cards WHERE number = ANY(:numbers))"
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE sessions SET started_at = started_at - make_interval(secs => :s), "
                f"last_seen_at = last_seen_at - make_interval(secs => :s) WHERE status = 'pending'{only}"
            ),
            {"s": seconds, "numbers": list(numbers or ())},
        )


# -- a billing world for the tests ---------------------------------------------------------------------

NAS_BY_VENDOR = {"mikrotik": "192.0.2.1", "chilli": "192.0.2.2", "wispr": "192.0.2.3", "generic": "192.0.2.4"}


def build_world(
    engine: Engine,
    vault: PinVault,
    *,
    traffic_price: int = 0,
    hotspot: dict[str, object] | None = None,
    **batch: object,
) -> GeneratedBatch:
    """Tariff 1.20/hour per started minute (+ `traffic_price` per MB), rates 1024/4096 kbit/s; hotspot
    "cafe" with one NAS per vendor profile (NAS_BY_VENDOR); a batch of cards valid from now."""
    with Session(engine) as session, session.begin():
        factories.tariff(
            session, time_increment_seconds=60, traffic_price=traffic_price, rate_up_kbps=1024, rate_down_kbps=4096
        )
        factories.hotspot(session, **(hotspot or {}))
        for vendor, address in NAS_BY_VENDOR.items():
            catalog.add_nas(
                session, name=vendor, hotspot="cafe", ip_address=address, secret="s", coa_port=3799, vendor=vendor
            )
        return factories.batch(session, vault, hotspot="cafe", now=datetime.now(UTC), **batch)
