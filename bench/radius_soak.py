"""Benchmark: radiusd's memory under steady load (issue 19), rlm_hotspot against a trivial rlm_python3 hook.

Steady cycles of logins + Start/Interim/Stop (bench/radius_vs_rlm_sql.drive, `--users` sessions a
cycle, rotating over `--cards` cards) for `--duration` seconds per variant, printing radiusd's RSS
(VmRSS from /proc) at every 100,000 requests and the growth per 1,000,000 requests after the first
`--warmup` requests (least-squares slope over the samples after it):

- `rlm_hotspot`: our module (direct accounting unless `--buffered-accounting`), through bench/soak_hooks.py,
  which wraps the hooks for tracemalloc (SOAK_TRACEMALLOC_EVERY, below);
- `trivial`: FreeRADIUS's rlm_sql doing the work, and a python3 instance whose hooks take the attributes
  and return a tuple (authorize and accounting), on the same radiusd: rlm_python3's own share;
- `rlm_sql`: rlm_sql alone, no python3 (radiusd's own baseline);
- `rlm_sql_no_md5`: the same without the `%{md5:...}` of Debian's `acct_unique` policy (Acct-Unique-Session-Id
  is the Acct-Session-Id, unique in this benchmark): FreeRADIUS < 3.2.2 leaks the digest context of every
  md5 xlat with OpenSSL 3 (docs/radius.md).

    .venv/bin/python bench/radius_soak.py --duration 600 --variants rlm_hotspot,trivial
    SOAK_TRACEMALLOC_EVERY=100000 .venv/bin/python bench/radius_soak.py --duration 600 --variants rlm_hotspot

With SOAK_TRACEMALLOC_EVERY the top Python allocation growth (by line) is written to
<config dir>/log/tracemalloc.txt and printed at the end. `--heaptrack FILE` runs radiusd under heaptrack
(`apt-get install heaptrack`; FILE-<variant>.zst, in a directory radiusd's user, nobody, can write; read it
with `heaptrack_print -f FILE-<variant>.zst --print-leaks 1`): what is still allocated at exit, by call stack;
`-M massif.out` writes the allocated heap over time (growth that is freed at exit shows only there).

    mkdir -m 1777 /tmp/ht
    .venv/bin/python bench/radius_soak.py --duration 300 --rate 500 --variants rlm_sql --heaptrack /tmp/ht/radiusd
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from radius_vs_rlm_sql import Server, drive, prepare_databases, write_confdirs

from devtools.cluster import PrivateCluster, temporary_cluster
from rlm_hotspot.radius import config as radius_config

STEP = 100_000


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def rss_split(pid: int) -> str:
    """VmRSS's parts: anonymous memory (heaps, arenas, stacks) and file pages (code, libraries touched)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return " ".join(f"{key[3:].lower()} {int(fields[key].split()[0]) / 1e3:.1f}" for key in ("RssAnon", "RssFile"))


def anon_by_kind(pid: int) -> dict[str, int]:
    """Resident bytes of radiusd's anonymous mappings by what they are: the brk heap, glibc's 64 MB thread
    arenas, 1 MiB regions (pymalloc's arenas), thread stacks (8 MB) and the rest (other mmaps)."""
    kinds: dict[str, int] = {}
    kind = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if "-" in head[0] and not head[0].endswith(":"):
            name = head[5] if len(head) > 5 else ""
            start, end = (int(x, 16) for x in head[0].split("-"))
            size = end - start
            if name:
                kind = name if name.startswith("[") else ""
            elif size == 1 << 20:
                kind = "1 MiB (pymalloc arenas)"
            elif size in (8 << 20, (8 << 20) + 4096):
                kind = "8 MB (thread stacks)"
            elif size <= 64 << 20 and start % (64 << 20) == 0:
                kind = "64 MB-aligned (glibc thread arenas)"
            else:
                kind = "other anonymous"
        elif kind and head[0] == "Rss:":
            kinds[kind] = kinds.get(kind, 0) + int(head[1]) * 1024
    return kinds


def malloc_trim(pid: int) -> None:
    """Ask radiusd's glibc to give back what it has freed (gdb calls malloc_trim(0) in it): memory kept
    resident after free, not a leak, is what this gives back."""
    before = rss_bytes(pid)
    gdb = ["gdb", "-p", str(pid), "-batch", "-ex", "call (int) malloc_trim(0)"]
    subprocess.run(gdb, capture_output=True, check=True)
    print(f"  malloc_trim(0): RSS {before / 1e6:.1f} -> {rss_bytes(pid) / 1e6:.1f} MB ({rss_split(pid)})", flush=True)


def with_soak_module(server: Server, variant: str) -> None:
    """Point the config dir's python3 instance at bench/soak_hooks.py (ours), or add a trivial one (A/B)."""
    modules = server.confdir / "soakpy"
    modules.mkdir(exist_ok=True)
    shutil.copy(Path(__file__).with_name("soak_hooks.py"), modules / "soak_hooks.py")
    for path in (modules, modules / "soak_hooks.py"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    ours = server.confdir / "mods-available" / radius_config.INSTANCE
    text = ours.read_text()
    python_path = text.split('python_path = "', 1)[1].split('"', 1)[0]
    if variant == "rlm_hotspot":
        text = text.replace(f'python_path = "{python_path}"', f'python_path = "{python_path}:{modules}"')
        ours.write_text(text.replace("module = rlm_hotspot.radius.hooks", "module = soak_hooks"))
        return
    trivial = (
        f'python3 soak {{\n\tpython_path = "{python_path}:{modules}"\n\tmodule = soak_hooks\n'
        "\tmod_authorize = ${.module}\n\tfunc_authorize = trivial_authorize\n"
        "\tmod_accounting = ${.module}\n\tfunc_accounting = trivial_accounting\n\tcext_compat = yes\n}\n"
    )
    (server.confdir / "mods-enabled" / "soak").write_text(trivial)
    site = server.confdir / "sites-enabled" / radius_config.INSTANCE
    text = site.read_text().replace("authorize {\n\tsql\n", "authorize {\n\tsoak\n\tsql\n")
    site.write_text(text.replace("accounting {\n\tsql\n", "accounting {\n\tsoak\n\tsql\n"))


def without_md5(server: Server) -> None:
    """Replace rlm_sql's `acct_unique` (an md5 xlat a packet) by a copy of Acct-Session-Id."""
    site = server.confdir / "sites-enabled" / radius_config.INSTANCE
    unique = 'preacct {\n\tupdate request {\n\t\t&Acct-Unique-Session-Id := "%{Acct-Session-Id}"\n\t}\n}\n'
    site.write_text(site.read_text().replace("preacct {\n\tacct_unique\n}\n", unique))


def fixed_thread_pool(server: Server, threads: int) -> None:
    """`threads` worker threads from the start, none started or retired under load."""
    conf = server.confdir / "radiusd.conf"
    text = conf.read_text()
    pool = text[text.index("thread pool {") : text.index("}", text.index("thread pool {")) + 1]
    fixed = (
        f"thread pool {{\n\tstart_servers = {threads}\n\tmax_servers = {threads}\n\tmin_spare_servers = 1\n"
        f"\tmax_spare_servers = {threads}\n\tmax_requests_per_server = 0\n}}"
    )
    conf.write_text(text.replace(pool, fixed))


def soak(server: Server, cluster: PrivateCluster, credentials: list[tuple[str, str]], args: argparse.Namespace) -> None:
    """Cycles until `--duration`; RSS every STEP requests; the slope after warm-up."""
    pid = server.radiusd_pid()
    print(f"== {server.name}: radiusd pid {pid}, RSS {rss_bytes(pid) / 1e6:.1f} MB at start ==", flush=True)
    kinds_at_start = anon_by_kind(pid)
    began, sent, cycle, next_mark = time.perf_counter(), 0, 0, STEP
    samples: list[tuple[int, int]] = []
    while time.perf_counter() - began < args.duration:
        start = cycle * args.users % len(credentials)
        chunk = (credentials + credentials)[start : start + args.users]
        outcomes = drive(server, chunk, args.window, f"soak-{cycle}", cluster, rate=args.rate)
        cycle += 1
        sent += sum(len(o.latencies) + o.timeouts for o in outcomes.values())
        refused = {p: o.codes for p, o in outcomes.items() if o.timeouts or set(o.codes) - {2, 5}}
        if refused:
            print(f"  cycle {cycle}: not all accepted/answered: {refused}", flush=True)
        if sent >= next_mark:
            rss = rss_bytes(pid)
            samples.append((sent, rss))
            rate = sent / (time.perf_counter() - began)
            print(
                f"  {sent:>9,} requests  {time.perf_counter() - began:6.0f} s  {rate:5.0f} req/s  "
                f"RSS {rss / 1e6:7.1f} MB ({rss_split(pid)})  load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
            next_mark = (sent // STEP + 1) * STEP
    after = [(n, rss) for n, rss in samples if n >= args.warmup]
    if len(after) >= 2:
        mean_n = sum(n for n, _ in after) / len(after)
        mean_r = sum(r for _, r in after) / len(after)
        slope = sum((n - mean_n) * (r - mean_r) for n, r in after) / sum((n - mean_n) ** 2 for n, _ in after)
        print(
            f"{server.name}: growth after {args.warmup:,} requests: {slope:.2f} MB per 1,000,000 requests "
            f"(= bytes a request; {len(after)} samples, {after[0][0]:,}-{after[-1][0]:,})",
            flush=True,
        )
    else:
        print(f"{server.name}: too few samples after warm-up for a slope: {samples}", flush=True)
    kinds = anon_by_kind(pid)
    for kind in sorted(kinds.keys() | kinds_at_start.keys()):
        start_mb, end_mb = kinds_at_start.get(kind, 0) / 1e6, kinds.get(kind, 0) / 1e6
        print(f"  anonymous resident, {kind}: {start_mb:.1f} MB at start, {end_mb:.1f} MB at the end", flush=True)
    if args.malloc_trim:
        malloc_trim(pid)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds per variant")
    parser.add_argument(
        "--variants", default="rlm_hotspot,trivial", help="of rlm_hotspot, trivial, rlm_sql, rlm_sql_no_md5"
    )
    parser.add_argument("--users", type=int, default=2000, help="sessions a cycle")
    parser.add_argument("--cards", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=200_000, help="requests before the slope is taken")
    parser.add_argument("--rate", type=float, help="requests a second at most (paced; default: as fast as answered)")
    parser.add_argument("--threads", type=int, help="a fixed thread pool of this many (default: radiusd.conf's)")
    parser.add_argument("--heaptrack", metavar="FILE", help="run radiusd under heaptrack, writing FILE.zst")
    parser.add_argument("--malloc-trim", action="store_true", help="at the end, malloc_trim(0) in radiusd (gdb)")
    parser.add_argument("--buffered-accounting", dest="buffered", action="store_true")
    args = parser.parse_args()
    keep = bool(os.environ.get("BENCH_KEEP"))
    with temporary_cluster("bench-soak-", keep=keep) as (cluster, root):
        settings_file, credentials = prepare_databases(cluster, root, args.cards)
        for variant in args.variants.split(","):
            ours, theirs = write_confdirs(root / variant, cluster, settings_file, args.buffered)
            server = ours if variant == "rlm_hotspot" else theirs
            server.name = variant
            if args.threads:
                fixed_thread_pool(server, args.threads)
            if args.heaptrack:
                server.wrapper = ["heaptrack", "-o", f"{args.heaptrack}-{variant}"]
            if variant == "rlm_sql_no_md5":
                without_md5(server)
            elif variant != "rlm_sql":
                with_soak_module(server, variant)
            os.environ["SOAK_TRACEMALLOC_OUT"] = str(server.confdir / "log" / "tracemalloc.txt")
            try:
                server.start()
                soak(server, cluster, credentials, args)
            finally:
                server.stop()
            traced = server.confdir / "log" / "tracemalloc.txt"
            if traced.exists():
                print(traced.read_text()[-6000:])
            cluster.psql(
                "hotspot", "UPDATE sessions SET status = 'closed', stopped_at = now() WHERE status <> 'closed'"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
