"""NetFlow end to end with tools nobody on the team wrote: a scapy pcap with known per-client bytes,
replayed by softflowd as NetFlow v5, v9 and IPFIX into a real nfacctd (configured by `flows config`),
then the importer. Every client's debit equals the price of its billable IP-layer bytes in the pcap."""

from __future__ import annotations

import os
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from scapy.all import ICMP, IP, TCP, UDP, Ether, Raw, wrpcap
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from flowimport.collector import build_spec, memory_pipes, write_collector_files
from flowimport.importer import Importer, ImporterSettings
from rlm_hotspot.cli.main import cli
from rlm_hotspot.db.ledger import post_entry
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services import flows as flow_service
from rlm_hotspot.services.flows import ImportPolicy
from tests.db.helpers import assert_ledger_balanced
from tests.db.test_flow_world import FREE_NET, HOTSPOT, flow_world, open_session, price, traffic_debited
from tests.e2e.conftest import Processes, require_binaries, udp_port_in_use, wait_until

SERVER = "93.184.216.34"
PORTAL = "10.1.0.1"  # the gateway/portal: inside the pool, free, never a guest
WALLED_GARDEN = "10.99.0.5"  # inside the tariff's free network
HEAVY, LIGHT, FREE_ONLY, BROKE = "10.1.0.11", "10.1.0.12", "10.1.0.13", "10.1.0.14"
CLIENTS = (HEAVY, LIGHT, FREE_ONLY, BROKE)


@dataclass
class Truth:
    """IP-layer bytes per client, split as the pre_tag_map must split them."""

    billable: dict[str, int]
    free: dict[str, int]
    download: dict[str, int]
    upload: dict[str, int]


def build_pcap(path: Path) -> Truth:
    """Client↔server, portal, walled garden, client-to-client and ICMP traffic, stamped just before now."""

    def is_free(src: str, dst: str) -> bool:
        return PORTAL in (src, dst) or WALLED_GARDEN in (src, dst) or (src in CLIENTS and dst in CLIENTS)

    plan = [  # (src, dst, layer-4 factory, payload size, packets)
        (SERVER, HEAVY, lambda: TCP(sport=443, dport=50001), 1400, 950),
        (HEAVY, SERVER, lambda: TCP(sport=50001, dport=443), 40, 480),
        (PORTAL, HEAVY, lambda: TCP(sport=80, dport=50002), 900, 20),
        (SERVER, LIGHT, lambda: TCP(sport=443, dport=50003), 1200, 330),
        (LIGHT, SERVER, ICMP, 56, 10),
        (WALLED_GARDEN, LIGHT, lambda: UDP(sport=53, dport=50004), 300, 40),
        (WALLED_GARDEN, FREE_ONLY, lambda: TCP(sport=443, dport=50005), 1300, 200),
        (HEAVY, FREE_ONLY, lambda: UDP(sport=50006, dport=50007), 1000, 60),
        (SERVER, BROKE, lambda: TCP(sport=443, dport=50008), 1000, 150),
    ]
    truth = Truth(*(defaultdict(int) for _ in range(4)))  # type: ignore[arg-type]
    packets, stamp = [], time.time() - 20
    for src, dst, layer4, size, count in plan:
        for _ in range(count):
            packet = Ether() / IP(src=src, dst=dst) / layer4() / Raw(b"x" * size)
            packet.time = stamp
            stamp += 0.001
            packets.append(packet)
            ip_bytes = len(bytes(packet[IP]))
            for client, direction in ((dst, truth.download), (src, truth.upload)):
                if client in CLIENTS:
                    direction[client] += ip_bytes
                    (truth.free if is_free(src, dst) else truth.billable)[client] += ip_bytes
    wrpcap(str(path), packets)
    return truth


def collector_spec(tmp_path: Path, port: int, source: str = "print"):  # type: ignore[no-untyped-def]
    spec = build_spec(
        client_networks=["10.1.0.0/16"],
        free_networks=[FREE_NET, f"{PORTAL}/32"],
        collector=f"127.0.0.1:{port}",
        spool=tmp_path / "spool",
        config_dir=tmp_path / "etc",
        source=source,
    )
    write_collector_files(spec)
    return spec


def start_nfacctd(processes: Processes, spec, port: int, tmp_path: Path):  # type: ignore[no-untyped-def]
    assert not udp_port_in_use(port), f"UDP port {port} is taken: refusing to start a second collector on it"
    nfacctd = processes.start(["nfacctd", "-f", str(spec.config_dir / "nfacctd.conf")], tmp_path / "nfacctd.log")
    wait_until(lambda: udp_port_in_use(port) or nfacctd.poll() is not None, what="nfacctd to bind its port")
    assert nfacctd.poll() is None, (tmp_path / "nfacctd.log").read_text()
    time.sleep(0.3)  # the plugins attach to the core right after the bind
    return nfacctd


def replay(pcap: Path, port: int, version: int) -> None:
    command = ["softflowd", "-a", "-d", "-r", str(pcap), "-n", f"127.0.0.1:{port}", "-v", str(version)]
    if version == 10:
        command += ["-A", "milli"]  # otherwise IPFIX timestamp_end is 1970
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def guests(committed: Engine, vault: PinVault) -> dict[str, tuple[int, int]]:
    """A session per client IP, started an hour ago; BROKE's account is drained to 1 minor unit."""
    now = datetime.now(UTC)
    with Session(committed) as session, session.begin():
        numbers = flow_world(session, vault, night_band=False)
        guests = {}
        for number, ip in zip(numbers, CLIENTS, strict=False):
            guest = open_session(session, number, ip, started_at=now - timedelta(hours=1))
            guests[ip] = (guest.account_id, guest.session_id)
        post_entry(session, account_id=guests[BROKE][0], amount=-499, cause="adjustment", key="e2e-drain", now=now)
    return guests


def importer(engine: Engine, spool: Path, pipes: dict[str, Path] | None = None) -> Importer:
    settings = ImporterSettings(
        hotspot=HOTSPOT, spool=spool, policy=ImportPolicy(60, 180), settle=timedelta(0), memory_pipes=pipes
    )
    return Importer(settings, sessionmaker(engine))


def assert_billed_exactly(engine: Engine, truth: Truth, guests: dict[str, tuple[int, int]]) -> None:
    with Session(engine) as session:
        for ip, (account, session_id) in guests.items():
            assert traffic_debited(session, account) == price(truth.billable[ip]), ip
            counters = session.execute(
                text("SELECT input_octets, output_octets FROM sessions WHERE id = :s"), {"s": session_id}
            ).one()
            assert tuple(counters) == (truth.upload[ip], truth.download[ip]), ip
        assert traffic_debited(session, guests[FREE_ONLY][0]) == 0
        cut = {s.session_id for s in flow_service.accounts_exhausted_with_open_sessions(session)}
        assert cut == {guests[BROKE][1]}
        assert_ledger_balanced(session)


def cut_when_the_money_runs_out(
    engine: Engine, database_url: str, key_file: Path, guests: dict[str, tuple[int, int]]
) -> None:
    """One real `hotspotctl worker --once` cycle cuts the session whose account the import drained, and
    only that one (its gate is closed: driver `none` here; the nftables lab tests a real gate)."""
    with engine.begin() as conn:  # every guest's status page is open: only money decides here
        conn.execute(text("UPDATE sessions SET last_seen_at = now(), last_heartbeat_at = now()"))
    env = {"HOTSPOT_DATABASE_URL": database_url, "HOTSPOT_PIN_KEY_FILE": str(key_file), "HOTSPOT_CONFIG": os.devnull}
    done = CliRunner().invoke(cli, ["worker", "--once", "--gate", "none"], env=env)
    assert done.exit_code == 0, done.output
    with engine.connect() as conn:
        ended = dict(conn.execute(text("SELECT id, terminate_cause FROM sessions WHERE status = 'closed'")).all())
    assert ended == {guests[BROKE][1]: "Balance-Exhausted"}


@pytest.mark.parametrize("version", [5, 9, 10])
def test_softflowd_to_nfacctd_to_debits(
    version: int,
    committed: Engine,
    guests: dict[str, tuple[int, int]],
    processes: Processes,
    free_udp_port: int,
    tmp_path: Path,
    database_url: str,
    key_file: Path,
) -> None:
    require_binaries("nfacctd", "softflowd")
    truth = build_pcap(tmp_path / "clients.pcap")
    assert truth.free[FREE_ONLY] > 0 and truth.billable[FREE_ONLY] == 0
    spec = collector_spec(tmp_path, free_udp_port)
    nfacctd = start_nfacctd(processes, spec, free_udp_port, tmp_path)
    replay(tmp_path / "clients.pcap", free_udp_port, version)
    time.sleep(0.5)
    processes.stop(nfacctd)  # SIGINT flushes every cache into the spool
    assert list(spec.spool.glob("down-*.json")), (tmp_path / "nfacctd.log").read_text()
    first = importer(committed, spec.spool).run_cycle()
    assert first.errors == 0 and first.imported
    assert sum(o.unattributed_bytes for o in first.outcomes) == 0
    assert_billed_exactly(committed, truth, guests)
    second = importer(committed, spec.spool).run_cycle()
    assert (second.imported, second.replayed) == ([], len(first.imported))
    assert_billed_exactly(committed, truth, guests)
    cut_when_the_money_runs_out(committed, database_url, key_file, guests)


def test_the_pmacct_client_reads_the_memory_table(
    committed: Engine, guests: dict[str, tuple[int, int]], processes: Processes, free_udp_port: int, tmp_path: Path
) -> None:
    require_binaries("nfacctd", "softflowd", "pmacct")
    truth = build_pcap(tmp_path / "clients.pcap")
    spec = collector_spec(tmp_path, free_udp_port, source="memory")
    pipes = memory_pipes(spec.config_dir)
    nfacctd = start_nfacctd(processes, spec, free_udp_port, tmp_path)
    wait_until(lambda: all(p.exists() for p in pipes.values()), what="the memory plugins' pipes")
    replay(tmp_path / "clients.pcap", free_udp_port, 9)
    time.sleep(1.0)
    try:
        report = importer(committed, spec.spool, pipes).run_cycle()
        assert report.errors == 0 and report.imported
        assert_billed_exactly(committed, truth, guests)
        # The table was erased by the read: a second poll finds nothing new.
        again = importer(committed, spec.spool, pipes).run_cycle()
        assert sum(o.billable_bytes for o in again.outcomes) == 0
        assert_billed_exactly(committed, truth, guests)
    finally:
        processes.stop(nfacctd)
