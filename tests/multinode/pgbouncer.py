"""A private pgbouncer (Debian's 1.18) in transaction pooling in front of a private test cluster.

It runs as the cluster's owner (pgbouncer refuses root) from a directory of its own, listens on a free
loopback port, reaches the cluster through its unix socket, and is stopped by its own PID only.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from devtools.cluster import PrivateCluster

PGBOUNCER = "/usr/sbin/pgbouncer"
POOL_SIZE = 10  # server connections per database: fewer than the clients of the tests, so they are shared


@contextmanager
def pgbouncer(cluster: PrivateCluster, port: int, users: tuple[str, ...] = ("postgres",)) -> Iterator[str]:
    """Run pgbouncer on 127.0.0.1:`port`; yields the host:port the nodes' URLs are rewritten to."""
    workdir = Path(tempfile.mkdtemp(prefix="hotspot-pgbouncer-"))
    workdir.chmod(0o755)
    (workdir / "userlist.txt").write_text("".join(f'"{user}" ""\n' for user in users))
    (workdir / "pgbouncer.ini").write_text(
        f"""[databases]
* = host={cluster.socket_dir} port={cluster.port}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {workdir}/userlist.txt
pool_mode = transaction
default_pool_size = {POOL_SIZE}
max_client_conn = 1000
logfile = {workdir}/pgbouncer.log
pidfile = {workdir}/pgbouncer.pid
"""
    )
    as_owner: list[str] = []
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        for path in workdir.iterdir():
            os.chown(path, owner.pw_uid, owner.pw_gid)
        os.chown(workdir, owner.pw_uid, owner.pw_gid)
        as_owner = ["runuser", "-u", "postgres", "--"]
    process = subprocess.Popen(
        [*as_owner, PGBOUNCER, str(workdir / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 15
        log = workdir / "pgbouncer.log"
        while not (log.exists() and "process up" in log.read_text()):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pgbouncer did not start: {log.read_text() if log.exists() else ''}")
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGINT)  # its own session: runuser and pgbouncer, nothing else
        process.wait(timeout=15)
        shutil.rmtree(workdir, ignore_errors=True)


def through(url: str, address: str, role: str) -> str:
    """`url` of a private cluster's database, reached at `address` (host:port) as `role` instead."""
    host, port = address.split(":")
    parsed = make_url(url)
    return parsed.set(host=host, port=int(port), username=role, query={}).render_as_string(hide_password=False)
