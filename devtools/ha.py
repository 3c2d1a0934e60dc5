"""A high-availability lab on one machine: one etcd, two PostgreSQL 15 nodes managed by Patroni.

For `make ha-lab` and tests/ha: everything on loopback high ports, in a private directory, run as the
``postgres`` system user when we are root (PostgreSQL and Patroni refuse root). Replication is
synchronous (`synchronous_mode: true`): a commit is acknowledged once the standby has it, so the standby
Patroni promotes has every acknowledged transaction. `primary_start_timeout: 0` makes Patroni fail over
at once when the primary's postmaster dies, instead of restarting it in place, and `use_pg_rewind`
brings the old primary back as a standby. Clients reach the primary by a multi-host libpq address with
`target_session_attrs=read-write` (docs/ha.md says why not HAProxy). Only processes started here are
ever signalled, by PID or by the process group of the session each was started in.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from devtools.cluster import _postgres_bindir
from devtools.processes import Processes

SCOPE = "hotspot-lab"
NODES = ("pg1", "pg2")


def free_tcp_ports(count: int) -> list[int]:
    """Distinct free high TCP ports on 127.0.0.1."""
    sockets = []
    try:
        while len(sockets) < count:
            probe = socket.socket()
            probe.bind(("127.0.0.1", 0))
            if probe.getsockname()[1] < 20000:
                probe.close()
                continue
            sockets.append(probe)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class Node:
    name: str
    pg_port: int
    rest_port: int
    root: Path

    @property
    def data_dir(self) -> Path:
        return self.root / self.name / "data"

    @property
    def config(self) -> Path:
        return self.root / self.name / "patroni.yml"

    @property
    def log(self) -> Path:
        return self.root / self.name / "patroni.log"

    def rest(self, path: str, body: dict[str, object] | None = None, timeout: float = 2.0) -> tuple[int, object]:
        """Patroni's REST API: (status, decoded JSON or text); (0, error) when it does not answer."""
        return http_request(self.rest_port, path, body, timeout)

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


def http_request(
    port: int, path: str, body: dict[str, object] | None = None, timeout: float = 2.0
) -> tuple[int, object]:
    """GET (or POST `body` as JSON) http://127.0.0.1:`port``path`: (status, decoded body); (0, error) if unreachable."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if body is None:
            connection.request("GET", path)
        else:
            connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, _decoded(response.read())
    except OSError as exc:
        return 0, str(exc)
    finally:
        connection.close()


def _decoded(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


@dataclass
class HaLab:
    root: Path
    etcd_port: int
    etcd_peer_port: int
    nodes: list[Node]
    processes: Processes = field(default_factory=Processes)
    patroni: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)  # node name -> its Patroni

    @classmethod
    def create(cls, root: Path | None = None) -> HaLab:
        root = root or Path(tempfile.mkdtemp(prefix="hotspot-ha-"))
        ports = free_tcp_ports(2 + 2 * len(NODES))
        nodes = [Node(name, ports[2 + 2 * i], ports[3 + 2 * i], root) for i, name in enumerate(NODES)]
        return cls(root, ports[0], ports[1], nodes)

    # -- addresses ------------------------------------------------------------------------------------
    def url(self, database: str = "hotspot", user: str = "postgres") -> str:
        """The SQLAlchemy URL every component uses: every node, the one that takes writes is chosen."""
        hosts = "&".join(f"host=127.0.0.1:{node.pg_port}" for node in self.nodes)
        return f"postgresql+psycopg2://{user}@/{database}?{hosts}&target_session_attrs=read-write"

    def create_database(self, name: str) -> str:
        """Create an empty database on the primary; its URL once every running standby has replayed it.

        Not before: a standby listed first that has not replayed the CREATE DATABASE yet refuses the
        connection with "database ... does not exist", and libpq gives up there instead of trying the next
        host (seen in tests/ha when a database was created right after a switchover).
        """
        admin = create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
        running = [
            self.node(member) for member, m in self.members().items() if m.get("state") in ("running", "streaming")
        ]
        for node in running:
            self.wait_for(lambda node=node: _accepts(node, name), 30, f"{node.name} to have database {name}")
        return self.url(name)

    def node(self, name: str) -> Node:
        return next(node for node in self.nodes if node.name == name)

    def members(self) -> dict[str, dict[str, object]]:
        """Patroni's view of the cluster (from whichever node answers): name -> member."""
        for node in self.nodes:
            status, body = node.rest("/cluster", timeout=1.0)
            if status == 200 and isinstance(body, dict):
                return {m["name"]: m for m in body.get("members", [])}
        return {}

    def leader(self) -> str | None:
        return next((name for name, m in self.members().items() if m.get("role") == "leader"
                     and m.get("state") == "running"), None)  # fmt: skip

    def sync_standby(self) -> str | None:
        return next((name for name, m in self.members().items() if m.get("role") == "sync_standby"
                     and m.get("state") in ("running", "streaming")), None)  # fmt: skip

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self, timeout: float = 90.0) -> None:
        """etcd, then both Patroni nodes; returns once there is a leader and a synchronous standby."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        self._start_etcd()
        for node in self.nodes:
            (node.root / node.name).mkdir(parents=True, exist_ok=True)
            node.config.write_text(self._patroni_config(node))
            self._own(node.root / node.name)
            self._start_patroni(node)
            if node is self.nodes[0]:  # the first bootstraps the cluster alone: no race for initdb
                self.wait_for(lambda: self.leader() == self.nodes[0].name, timeout, "the first node to lead")
        self.wait_for(lambda: self.sync_standby() is not None, timeout, "a synchronous standby")

    def wait_for(self, condition, timeout: float, what: str) -> float:  # type: ignore[no-untyped-def]
        """Poll `condition` every 50 ms; the seconds it took. Raises with the nodes' logs on timeout."""
        began = time.monotonic()
        while not condition():
            if time.monotonic() - began > timeout:
                logs = "\n".join(f"--- {n.name}\n{_tail(n.log)}" for n in self.nodes)
                raise TimeoutError(f"{what}: not within {timeout:g} s; members {self.members()}\n{logs}")
            time.sleep(0.05)
        return time.monotonic() - began

    def kill_postmaster(self, name: str) -> int:
        """SIGKILL the node's postmaster (its backends follow it): the primary dies as in a crash."""
        pid = self.node(name).postmaster_pid()
        if pid is None:
            raise RuntimeError(f"{name} has no postmaster running")
        os.kill(pid, signal.SIGKILL)
        return pid

    def lose_host(self, name: str) -> None:
        """The node's host dies: SIGKILL its Patroni (and the session it was started in), then its postmaster
        (Patroni runs PostgreSQL in a session of its own, so that it outlives Patroni). Nothing restarts it."""
        patroni = self.patroni.pop(name)
        os.killpg(patroni.pid, signal.SIGKILL)
        patroni.wait()
        self.kill_postmaster(name)

    def restore_host(self, name: str) -> None:
        """The lost host comes back: its Patroni starts again on its data directory (it rejoins as a replica)."""
        self._start_patroni(self.node(name))

    def _start_patroni(self, node: Node) -> None:
        self.patroni[node.name] = self.processes.start(
            [*_as_postgres(), "patroni", str(node.config)], node.log, signal.SIGTERM, cwd=self.root
        )

    def switchover(self, leader: str, candidate: str) -> tuple[int, object]:
        """A planned switchover through Patroni's REST API (what `patronictl switchover` does)."""
        return self.node(leader).rest("/switchover", {"leader": leader, "candidate": candidate}, timeout=30.0)

    def stop(self) -> None:
        self.processes.stop_all()  # Patroni stops its PostgreSQL; etcd last (started first)
        shutil.rmtree(self.root, ignore_errors=True)

    # -- configuration --------------------------------------------------------------------------------
    def _start_etcd(self) -> None:
        data = self.root / "etcd"
        data.mkdir(exist_ok=True)
        self._own(data)
        client = f"http://127.0.0.1:{self.etcd_port}"
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        etcd = self.processes.start(
            [*_as_postgres(), "etcd", "--name", "etcd1", "--data-dir", str(data),
             "--listen-client-urls", client, "--advertise-client-urls", client,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"etcd1={peer}", "--initial-cluster-state", "new"],
            self.root / "etcd.log", signal.SIGTERM, cwd=self.root,
        )  # fmt: skip

        def answers() -> bool:
            assert etcd.poll() is None, (self.root / "etcd.log").read_text()
            return http_request(self.etcd_port, "/health", timeout=1.0)[0] == 200

        self.wait_for(answers, 30, "etcd")

    def _patroni_config(self, node: Node) -> str:
        """Patroni's YAML (written as JSON, which YAML reads) for one node."""
        trust = ["local all all trust", "host all all 127.0.0.1/32 trust", "host replication all 127.0.0.1/32 trust"]
        config = {
            "scope": SCOPE,
            "name": node.name,
            "log": {"level": "INFO"},
            "restapi": {"listen": f"127.0.0.1:{node.rest_port}", "connect_address": f"127.0.0.1:{node.rest_port}"},
            "etcd3": {"hosts": [f"127.0.0.1:{self.etcd_port}"]},
            "bootstrap": {
                "dcs": {
                    "ttl": 10,
                    "loop_wait": 1,
                    "retry_timeout": 3,
                    "maximum_lag_on_failover": 1048576,
                    "synchronous_mode": True,
                    "primary_start_timeout": 0,  # a crashed primary fails over instead of restarting in place
                    "postgresql": {
                        "use_pg_rewind": True,
                        "use_slots": True,
                        "parameters": {
                            "max_connections": 200,
                            "wal_log_hints": "on",
                            "wal_keep_size": "256MB",
                            "hot_standby": "on",
                            "shared_buffers": "64MB",
                        },
                    },
                },
                "initdb": [{"encoding": "UTF8"}, {"locale": "C"}],
                "pg_hba": trust,
            },
            "postgresql": {
                "listen": f"127.0.0.1:{node.pg_port}",
                "connect_address": f"127.0.0.1:{node.pg_port}",
                "data_dir": str(node.data_dir),
                "bin_dir": str(_postgres_bindir()),
                "pgpass": str(node.root / node.name / "pgpass"),
                "pg_hba": trust,
                "authentication": {
                    "superuser": {"username": "postgres"},
                    "replication": {"username": "postgres"},
                    "rewind": {"username": "postgres"},
                },
                "parameters": {"unix_socket_directories": str(node.root / node.name)},
            },
            "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False, "nosync": False},
        }
        return json.dumps(config, indent=2) + "\n"

    def _own(self, path: Path) -> None:
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            for each in [path, *path.rglob("*")]:
                os.chown(each, owner.pw_uid, owner.pw_gid)


def _accepts(node: Node, database: str) -> bool:
    """Whether the node's PostgreSQL accepts a connection to `database` (read-only will do)."""
    engine = create_engine(f"postgresql+psycopg2://postgres@127.0.0.1:{node.pg_port}/{database}")
    try:
        with engine.connect():
            return True
    except OperationalError:
        return False
    finally:
        engine.dispose()


def _as_postgres() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def main(argv: list[str] | None = None) -> int:
    """`python -m devtools.ha`: start the lab, say where it is, run until SIGINT/SIGTERM, then stop it."""
    parser = argparse.ArgumentParser(prog="python -m devtools.ha", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="directory for the lab's state (default: a new temporary one)")
    parser.add_argument("--database", default="hotspot", help="the database to create (default: hotspot)")
    parser.add_argument("--url-file", type=Path, help="write the database URL here once the lab is up")
    args = parser.parse_args(argv)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})  # stop the lab, not us
    lab = HaLab.create(args.root)
    try:
        lab.start()
        lab.create_database(args.database)
        print(f"leader {lab.leader()}, synchronous standby {lab.sync_standby()}")
        for node in lab.nodes:
            print(f"  {node.name}: postgres 127.0.0.1:{node.pg_port}, Patroni REST http://127.0.0.1:{node.rest_port}/,"
                  f" config {node.config}")  # fmt: skip
        print(f"database URL: {lab.url(args.database)}", flush=True)
        if args.url_file:
            args.url_file.write_text(lab.url(args.database) + "\n")
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        lab.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())


def _tail(log: Path) -> str:
    """The end of a node's log, for an error message (a node not started yet has none)."""
    return log.read_text(errors="replace")[-3000:] if log.exists() else "(not started)"
