"""A private PostgreSQL cluster for the demo and the tests: the "embedded default".

The cluster lives in a data directory of its own (``var/pg`` for ``make demo``, a temporary directory
for each test run), listens on a unix socket only, and is run as the ``postgres`` system user when we
are root, because PostgreSQL refuses to run as root. It never touches a server that happens to be
running on the machine: the socket directory is private, so nothing else can be reached by accident.
"""

from __future__ import annotations

import argparse
import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PORT = 55432


def _postgres_bindir() -> Path:
    """The newest installed PostgreSQL server binaries (Debian keeps them out of PATH)."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if not candidates:
        raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
    return Path(candidates[-1]).parent


@dataclass
class PrivateCluster:
    """One private cluster: data directory, socket directory and the port that names the socket."""

    datadir: Path
    port: int = DEFAULT_PORT

    @property
    def socket_dir(self) -> Path:
        return self.datadir.parent / (self.datadir.name + "-run")

    @property
    def logfile(self) -> Path:
        return self.socket_dir / "postgresql.log"

    def url(self, database: str = "hotspot", user: str = "postgres") -> str:
        """SQLAlchemy URL reaching this cluster through its unix socket."""
        return f"postgresql+psycopg2://{user}@/{database}?host={self.socket_dir}&port={self.port}"

    # -- running commands as the cluster's owner ---------------------------------------------------
    def _as_owner(self) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--"]
        return []

    def _chown_to_owner(self, path: Path) -> None:
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self._as_owner(), *args], check=True, capture_output=True, text=True)

    # -- lifecycle ---------------------------------------------------------------------------------
    def initialised(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def running(self) -> bool:
        return (self.socket_dir / f".s.PGSQL.{self.port}").exists() and self._pg_ctl_status()

    def _pg_ctl_status(self) -> bool:
        result = subprocess.run(
            [*self._as_owner(), str(_postgres_bindir() / "pg_ctl"), "status", "-D", str(self.datadir)],
            capture_output=True,
            text=True,
            check=False,
        )
        return result.returncode == 0

    def init(self) -> None:
        if self.initialised():
            return
        self.datadir.mkdir(parents=True, exist_ok=True)
        self._chown_to_owner(self.datadir)
        self._check_reachable_by_owner()
        self._run(
            str(_postgres_bindir() / "initdb"),
            "-D",
            str(self.datadir),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        )

    def _check_reachable_by_owner(self) -> None:
        if os.geteuid() != 0:
            return
        probe = subprocess.run([*self._as_owner(), "test", "-w", str(self.datadir)], capture_output=True, check=False)
        if probe.returncode != 0:
            raise RuntimeError(
                f"the postgres user cannot reach {self.datadir}: every parent directory must be "
                "traversable (chmod o+x) for a private cluster under this checkout"
            )

    def start(self) -> None:
        """Start the cluster (idempotent) and wait until it accepts connections."""
        self.init()
        if self.running():
            return
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self._chown_to_owner(self.socket_dir)
        options = (
            f"-c listen_addresses='' -k {self.socket_dir} -p {self.port} "
            "-c max_connections=200 -c shared_buffers=256MB -c log_min_messages=warning"
        )
        self._run(
            str(_postgres_bindir() / "pg_ctl"),
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            str(self.datadir),
            "-l",
            str(self.logfile),
            "-o",
            options,
        )

    def stop(self, mode: str = "fast") -> None:
        if not self.initialised() or not self._pg_ctl_status():
            return
        self._run(str(_postgres_bindir() / "pg_ctl"), "stop", "-w", "-m", mode, "-D", str(self.datadir))

    def create_database(self, name: str) -> None:
        """Create a database if it does not exist yet."""
        exists = self.psql("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{name}'").strip()
        if not exists:
            self.psql("postgres", f'CREATE DATABASE "{name}"')

    def psql(self, database: str, sql: str) -> str:
        result = subprocess.run(
            [
                str(_postgres_bindir().parent / "bin" / "psql"),
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-c",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout

    def _client(self, program: str, *args: str) -> None:
        """Run a PostgreSQL client program (pg_dump, pg_restore) against this cluster as its superuser."""
        connection = ["-h", str(self.socket_dir), "-p", str(self.port), "-U", "postgres"]
        command = [str(_postgres_bindir() / program), *connection, *args]
        subprocess.run(command, check=True, capture_output=True, text=True)

    def dump(self, database: str, path: Path) -> None:
        """`pg_dump -Fc` of `database` into `path` (what docs/operations.md tells an operator to back up)."""
        self._client("pg_dump", "-Fc", "-f", str(path), database)

    def restore(self, database: str, path: Path) -> None:
        """`pg_restore` of a `dump` into `database`, created empty here."""
        self.create_database(database)
        self._client("pg_restore", "--exit-on-error", "--no-owner", "-d", database, str(path))

    def destroy(self) -> None:
        self.stop(mode="immediate")
        shutil.rmtree(self.datadir, ignore_errors=True)
        shutil.rmtree(self.socket_dir, ignore_errors=True)


@contextmanager
def temporary_cluster(prefix: str, *databases: str, keep: bool = False) -> Iterator[tuple[PrivateCluster, Path]]:
    """A started private cluster in a fresh temporary directory, with `databases` created; destroyed
    afterwards (the directory too, unless `keep`). For benchmarks and tests."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)  # the postgres system user must reach its data directory
    cluster = PrivateCluster(root / "pg", port=40000 + os.getpid() % 20000)
    try:
        cluster.start()
        for database in databases:
            cluster.create_database(database)
        yield cluster, root
    finally:
        cluster.destroy()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Command line for the Makefile: start|stop|status|url a cluster in a data directory."""
    parser = argparse.ArgumentParser(prog="python -m devtools.cluster", description=__doc__)
    parser.add_argument("action", choices=["start", "stop", "status", "url"])
    parser.add_argument("--datadir", default="var/pg", type=Path)
    parser.add_argument("--port", default=DEFAULT_PORT, type=int)
    parser.add_argument("--database", default="hotspot")
    args = parser.parse_args(argv)
    cluster = PrivateCluster(args.datadir.resolve(), args.port)
    try:
        if args.action == "start":
            cluster.start()
            cluster.create_database(args.database)
            print(f"PostgreSQL running: {cluster.url(args.database)}")
        elif args.action == "stop":
            cluster.stop()
        elif args.action == "status":
            print("running" if cluster.running() else "stopped")
            return 0 if cluster.running() else 3
        else:
            print(cluster.url(args.database))
    except subprocess.CalledProcessError as exc:
        print(f"{parser.prog} {args.action} failed: {exc.stderr.strip() or exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:
        print(f"{parser.prog} {args.action} failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
