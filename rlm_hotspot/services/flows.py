"""Use cases of NetFlow traffic billing: import one batch of per-client byte counts, exactly once.

A batch is what one nfacctd purge wrote for one direction: (client IP, bin start, free?, bytes) rows.
Importing it, in the caller's transaction:

1. records the batch (a replayed or re-delivered batch stops here and changes nothing);
2. attributes each (IP, bin) to the session of the hotspot that held the IP (the core's rule, applied to
   the candidate sessions read in one query); what no session held is stored as unattributed, never billed;
3. rates each session's bytes with the core: billable bytes per the tariff's direction, priced at the
   band in force at the bin start in the hotspot's time zone, on the session's cumulative meter, so the
   debit is ``charged(new) - charged(old)`` and rounding never accumulates;
4. applies every debit in one statement (ledger cause 'traffic', key = batch + session).

Before attribution, each (client IP, bin, direction, class) is bounded by what the hotspot's line could
carry in one bin (``line_rate_bound``): the excess is not billed but held in the ``quarantine`` table,
and ``release_held_traffic`` bills it later through the same rating path if an admin decides so.

Only hotspots whose ``traffic_meter`` is 'netflow' are billed this way (one meter per quantity).
Bytes are IP-layer bytes (IP header + payload), as NetFlow counts them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from fractions import Fraction
from itertools import chain, compress
from operator import not_
from typing import NamedTuple, overload
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from rlm_hotspot.core.attribution import BinWindow, Claim, holder, latest_first, lone_holder
from rlm_hotspot.core.plausibility import MAX_BIGINT, HoldReason
from rlm_hotspot.core.tariff import BytesAt, Meter, Tariff, Usage, band_at, rate
from rlm_hotspot.db import flows as q
from rlm_hotspot.services.catalog import get_tariff
from rlm_hotspot.services.errors import NotFound, ServiceError


class Direction(StrEnum):
    """Download: the client is the destination (bytes to the guest); upload: the client is the source."""

    DOWNLOAD = "download"
    UPLOAD = "upload"


class TrafficCount(NamedTuple):
    """Bytes of one client IP in one bin, free (tagged so by the pre_tag_map) or billable."""

    ip: str
    bin_start: datetime
    bytes: int
    free: bool


@dataclass
class TrafficCounts(Sequence[TrafficCount]):
    """A batch's counts as parallel columns, read as a sequence of ``TrafficCount``.

    Columns, not one object per count: a batch holds one count per client, direction and class (tens of
    thousands), and a reader can extend the columns in bulk while the import consumes them whole.
    """

    ips: list[str] = field(default_factory=list)
    bin_starts: list[datetime] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    free: list[bool] = field(default_factory=list)

    @classmethod
    def of(cls, counts: Iterable[TrafficCount]) -> TrafficCounts:
        if isinstance(counts, TrafficCounts):
            return counts
        columns = cls()
        for count in counts:
            columns.append(count)
        return columns

    def append(self, count: TrafficCount) -> None:
        self.extend([count.ip], [count.bin_start], [count.bytes], [count.free])

    def extend(
        self, ips: Iterable[str], bin_starts: Iterable[datetime], sizes: Iterable[int], free: Iterable[bool]
    ) -> None:
        self.ips.extend(ips)
        self.bin_starts.extend(bin_starts)
        self.sizes.extend(sizes)
        self.free.extend(free)

    def __len__(self) -> int:
        return len(self.ips)

    def where(self, keep: Sequence[bool]) -> TrafficCounts:
        """The counts whose ``keep`` flag is set."""
        return TrafficCounts(
            list(compress(self.ips, keep)),
            list(compress(self.bin_starts, keep)),
            list(compress(self.sizes, keep)),
            list(compress(self.free, keep)),
        )

    def by_bin(self) -> dict[datetime, TrafficCounts]:
        """The counts of each bin (a spool file holds one bin: then they are these counts, not a copy)."""
        starts = set(self.bin_starts)
        if len(starts) == 1:
            return {starts.pop(): self}
        return {start: self.where([each == start for each in self.bin_starts]) for start in starts}

    def __iter__(self) -> Iterator[TrafficCount]:
        return map(TrafficCount._make, zip(self.ips, self.bin_starts, self.sizes, self.free, strict=True))

    @overload
    def __getitem__(self, index: int) -> TrafficCount: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[TrafficCount]: ...
    def __getitem__(self, index: int | slice) -> TrafficCount | Sequence[TrafficCount]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return TrafficCount(self.ips[index], self.bin_starts[index], self.sizes[index], self.free[index])


@dataclass(frozen=True)
class FlowBatch:
    """One purge block of one direction; ``name`` is stable, so a re-delivery is recognised."""

    name: str
    direction: Direction
    bin_start: datetime
    counts: TrafficCounts  # any sequence of TrafficCount is accepted and stored as columns
    malformed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "counts", TrafficCounts.of(self.counts))


@dataclass(frozen=True)
class ImportPolicy:
    """Bin length of the collector and how long after a stop a session still owns its IP's bytes.

    The grace window covers flows reported late (active timeout + one bin) for a session that ended.
    """

    bin_seconds: int = 60
    grace_seconds: int = 180

    @property
    def bin_length(self) -> timedelta:
        return timedelta(seconds=self.bin_seconds)

    def __post_init__(self) -> None:
        if self.bin_seconds < 1 or self.grace_seconds < 0:
            raise ServiceError("the bin must be at least 1 s and the grace window not negative")


@dataclass(frozen=True)
class ImportOutcome:
    """What one import transaction did; ``replayed`` batches had been imported before and changed nothing."""

    imported: tuple[str, ...] = ()
    replayed: tuple[str, ...] = ()
    records: int = 0
    sessions: int = 0
    billable_bytes: int = 0
    free_bytes: int = 0
    unattributed_bytes: int = 0
    debited: int = 0
    exhausted_accounts: tuple[int, ...] = ()
    held: tuple[HeldTraffic, ...] = ()  # excesses over the line-rate bound, quarantined, not billed


#: What a NUMERIC(20, 0) column of the quarantine holds at most; the exact figure is kept in ``detail``.
NUMERIC_20_MAX = 10**20 - 1
#: The line-rate bound allows this share of a bin more: nfacctd writes a bin about a second after it ends
#: and exporters' flow boundaries jitter by a second or two around the bin's edges (3 s of a 1-minute bin).
BOUND_SLACK = Fraction(1, 20)


def line_rate_bound(max_rate_kbps: int, bin_seconds: int) -> int:
    """The most IP-layer bytes one guest can move one way in one bin: the hotspot's line rate (kbit/s,
    10^3 bits) x the bin, plus ``BOUND_SLACK``. IP bytes exclude framing, so the line rate over-states
    them: the bound is never below what the line really carries in a bin."""
    return int(max_rate_kbps * 125 * bin_seconds * (1 + BOUND_SLACK))


class HeldTraffic(NamedTuple):
    """Bytes of one (IP, bin, direction, class) beyond the line-rate bound: held, not billed."""

    reason: str  # 'bytes-beyond-line-rate', or 'counter-out-of-range' when the count does not fit BIGINT
    direction: Direction
    ip: str
    bin_start: datetime
    free: bool
    reported: int  # the count as the records stated it (summed over the import's batches)
    held: int  # reported - bound
    batch: str  # the first batch of the import holding the count
    session_id: int | None  # the session that held the IP then, if one can pay

    @property
    def identity(self) -> str:
        free = " free" if self.free else ""
        return f"{self.batch} ip {self.ip} bin {self.bin_start.isoformat()}{free}"


@dataclass(frozen=True)
class FlowHotspot:
    id: int
    name: str
    timezone: ZoneInfo
    max_rate_kbps: int


def flow_hotspot(db: Session, name: str) -> FlowHotspot:
    """The hotspot, refused unless its traffic is metered by NetFlow (never bill bytes twice)."""
    row = q.hotspot(db, name)
    if row is None:
        raise NotFound(f"no hotspot {name!r}")
    if row.traffic_meter != "netflow":
        raise ServiceError(
            f"hotspot {name!r} meters traffic by {row.traffic_meter}, not netflow: importing its flows would bill "
            "the same bytes twice (set the hotspot's traffic meter to netflow first)"
        )
    return FlowHotspot(row.id, row.name, ZoneInfo(row.timezone), row.max_rate_kbps)


@dataclass(frozen=True)
class CollectorInputs:
    """What the collector configuration needs from the database for one hotspot."""

    free_networks: tuple[str, ...]
    traffic_meter: str


def collector_inputs(db: Session, hotspot_name: str) -> CollectorInputs:
    """The free networks of the hotspot's tariff (tagged free by the pre_tag_map) and its traffic meter."""
    row = q.hotspot(db, hotspot_name)
    if row is None:
        raise NotFound(f"no hotspot {hotspot_name!r}")
    return CollectorInputs(get_tariff(db, row.tariff_id).spec.free_networks, row.traffic_meter)


def _header(batch: FlowBatch, bin_length: timedelta) -> q.BatchHeader:
    starts = set(batch.counts.bin_starts) or {batch.bin_start}  # a set first: few distinct bins, many counts
    return q.BatchHeader(
        name=batch.name,
        direction=batch.direction.value,
        bin_start=min(starts),
        bin_end=max(starts) + bin_length,
        records=len(batch.counts),
        malformed=batch.malformed,
    )


SizeClass = tuple[Direction, bool]  # (direction, free?)
BinSizes = dict[SizeClass, dict[str, int]]  # of one bin: direction and class → client IP → bytes


def _sizes_by_bin(batches: Iterable[FlowBatch]) -> dict[datetime, BinSizes]:
    """Bytes per bin, direction, class (billable or free) and client IP, summed over the batches.

    Keyed bin first, then by IP alone: there are few bins, and a string caches its hash while an (IP, bin)
    tuple would be built and hashed again at every one of the hundreds of thousands of lookups.
    """
    sizes: dict[datetime, BinSizes] = {}
    for batch in batches:
        for start, counts in batch.counts.by_bin().items():
            classes = sizes.get(start)
            if classes is None:
                classes = sizes[start] = {(d, free): {} for d in Direction for free in (False, True)}
            billable = list(map(not_, counts.free))
            for free, selected in ((False, billable), (True, counts.free)):
                part = counts.where(selected)
                _add_sizes(classes[batch.direction, free], part.ips, part.sizes)
    return sizes


def _add_sizes(totals: dict[str, int], ips: list[str], sizes: list[int]) -> None:
    """Add each size to its IP's total. nfacctd writes one record per (IP, tag) and block, so an IP is
    usually new: then the whole batch is added by ``dict`` in C, with no Python code run per record."""
    part = dict(zip(ips, sizes, strict=True))
    if len(part) == len(ips) and totals.keys().isdisjoint(part):
        totals.update(part)
        return
    for ip, size in zip(ips, sizes, strict=True):  # an IP seen twice: sum in Python
        totals[ip] = totals.get(ip, 0) + size


@dataclass
class _PriceBands:
    """Which bins of an import share a price band, per tariff. Pricing is linear, so the bytes of one band
    are summed first and the core prices each session once per band: a backlog of many bins costs no
    more core calls than one bin."""

    tariffs: dict[int, Tariff]
    tz: ZoneInfo
    _first_bin: dict[tuple[int, int], datetime] = field(default_factory=dict)  # (tariff, band start minute)

    def of(self, bin_start: datetime) -> dict[int, datetime]:
        """Per tariff, the band in force at ``bin_start``, named by the first bin seen in it."""
        names = {}
        for tariff_id, tariff in self.tariffs.items():
            band = (tariff_id, band_at(tariff, self.tz, bin_start).start_minute)
            names[tariff_id] = self._first_bin.setdefault(band, bin_start)
        return names


@dataclass(slots=True)
class _SessionTally:
    """One session's rating state and its bytes in this import: billable [download, upload] per price band
    (named as ``_PriceBands`` names it), and all bytes (billable + free) each way."""

    account_id: int
    card_id: int
    tariff_id: int
    traffic_cost_num: int
    by_band: dict[datetime, list[int]] = field(default_factory=dict)
    download: int = 0
    upload: int = 0


def _candidate_sessions(
    db: Session, hotspot_id: int, sizes: dict[datetime, BinSizes], windows: dict[datetime, BinWindow]
) -> list[q.IpClaim]:
    """The sessions of the hotspot that may hold one of the IPs at one of the bins, in one query."""
    if not windows:
        return []
    span = BinWindow.any_of(windows.values())
    return q.ip_claims(
        db,
        hotspot_id=hotspot_id,
        ips=set().union(*(by_ip.keys() for classes in sizes.values() for by_ip in classes.values())),
        started_before=span.bin_end,
        stopped_since=span.earliest_stop,
    )


def _claims_by_ip(rows: Sequence[q.IpClaim]) -> dict[str, Sequence[Claim]]:
    """Each IP's candidate sessions, ordered for the core's ``holder``."""
    candidates: dict[str, list[Claim]] = {}
    for row in rows:
        candidates.setdefault(row.ip, []).append(Claim(row.started_at, row.stopped_at, row.session_id))
    return {ip: latest_first(found) for ip, found in candidates.items()}


def _tally_sessions(
    rows: Sequence[q.IpClaim],
    sizes: dict[datetime, BinSizes],
    windows: dict[datetime, BinWindow],
    bands: _PriceBands,
) -> tuple[dict[int, _SessionTally], dict[datetime, set[str]]]:
    """Give each (IP, bin) to its holder among the candidate sessions ``rows`` (the core's rule) and add its
    bytes to that session's tally.

    Returns the tallies of the sessions that got bytes and, per bin, the IPs nobody can pay for: held by
    no session, or by a RADIUS session still waiting for its Accounting-Start (no account yet).
    """
    if not windows:  # batches without counts: an empty purge or memory-table poll
        return {}, {}
    claims = _claims_by_ip(rows)
    payable = {
        row.session_id: _SessionTally(row.account_id, row.card_id, row.tariff_id, row.traffic_cost_num)
        for row in rows
        if row.account_id is not None
    }
    throughout = BinWindow.throughout(windows.values())
    held_throughout: dict[str, _SessionTally] = {}  # decided once per IP instead of once per bin
    for ip, found in claims.items():
        claim = lone_holder(found, throughout)
        if claim is not None and claim.session_id in payable:
            held_throughout[ip] = payable[claim.session_id]
    unpaid: dict[datetime, set[str]] = {}
    for start, classes in sizes.items():
        window, band_of = windows[start], bands.of(start)
        down_billable, down_free = classes[Direction.DOWNLOAD, False], classes[Direction.DOWNLOAD, True]
        up_billable, up_free = classes[Direction.UPLOAD, False], classes[Direction.UPLOAD, True]
        for ip in dict.fromkeys(chain(down_billable, down_free, up_billable, up_free)):  # in file order: cache-friendly
            tally = held_throughout.get(ip)
            if tally is None:
                claim = holder(claims.get(ip, ()), window)
                tally = None if claim is None else payable.get(claim.session_id)
                if tally is None:
                    unpaid.setdefault(start, set()).add(ip)
                    continue
            download, upload = down_billable.get(ip, 0), up_billable.get(ip, 0)
            band = tally.by_band.setdefault(band_of[tally.tariff_id], [0, 0])
            band[0] += download
            band[1] += upload
            tally.download += download + down_free.get(ip, 0)
            tally.upload += upload + up_free.get(ip, 0)
    return {session_id: tally for session_id, tally in payable.items() if tally.by_band}, unpaid


CountKey = tuple[datetime, SizeClass, str]  # (bin, (direction, free?), client IP)


def _cap_sizes(sizes: dict[datetime, BinSizes], bound: int) -> dict[CountKey, int]:
    """Cap every summed count at ``bound``, in place; returns what each capped count was.

    The usual import has nothing to cap, and finds it out with one ``max`` in C per bin and class."""
    over: dict[CountKey, int] = {}
    for start, classes in sizes.items():
        for size_class, by_ip in classes.items():
            if by_ip and max(by_ip.values()) > bound:
                for ip, size in by_ip.items():
                    if size > bound:
                        over[start, size_class, ip] = size
                        by_ip[ip] = bound
    return over


def _unpaid_counts(
    batch_id: int, batch: FlowBatch, unpaid: dict[datetime, set[str]], allowance: dict[CountKey, int]
) -> Iterator[q.CountRows]:
    """The batch's counts of IPs nobody can pay for in their bin, kept as they came (free or not), except
    that a capped count's records share its ``allowance`` (the bound, spent in batch order)."""
    for start, counts in batch.counts.by_bin().items():
        ips = unpaid.get(start)
        if ips:
            kept = counts.where([ip in ips for ip in counts.ips])
            sizes = kept.sizes
            if allowance:
                sizes = list(sizes)
                for i, key in enumerate(
                    (start, (batch.direction, free), ip) for ip, free in zip(kept.ips, kept.free, strict=True)
                ):
                    if key in allowance:
                        sizes[i] = min(sizes[i], allowance[key])
                        allowance[key] -= sizes[i]
            yield q.CountRows(batch_id, kept.ips, kept.bin_starts, kept.free, sizes)


def _held_traffic(
    over: dict[CountKey, int],
    bound: int,
    fresh: Sequence[FlowBatch],
    rows: Sequence[q.IpClaim],
    windows: dict[datetime, BinWindow],
) -> tuple[HeldTraffic, ...]:
    """What the capped counts held, each with the import's first batch holding it and the session that
    would have paid for it (the core's attribution rule, as for the billed part)."""
    if not over:
        return ()
    claims = _claims_by_ip(rows)
    payable = {row.session_id for row in rows if row.account_id is not None}
    first_batch: dict[CountKey, str] = {}
    for batch in fresh:
        columns = zip(batch.counts.bin_starts, batch.counts.free, batch.counts.ips, strict=True)
        for start, free, ip in set(columns):
            first_batch.setdefault((start, (batch.direction, free), ip), batch.name)
    held = []
    for (start, (direction, free), ip), reported in over.items():
        claim = holder(claims.get(ip, ()), windows[start])
        reason = HoldReason.COUNTER_OUT_OF_RANGE if reported > MAX_BIGINT else HoldReason.BYTES_BEYOND_LINE_RATE
        key = (start, (direction, free), ip)
        session_id = claim.session_id if claim is not None and claim.session_id in payable else None
        held.append(
            HeldTraffic(reason, direction, ip, start, free, reported, reported - bound, first_batch[key], session_id)
        )
    return tuple(held)


def import_batches(
    db: Session, hotspot_name: str, batches: Sequence[FlowBatch], now: datetime, policy: ImportPolicy
) -> ImportOutcome:
    """Attribute, rate and debit batches (see the module docstring) in the caller's transaction.

    Several batches (both directions of a bin, or a backlog) cost the same few statements as one, and
    each session gets one debit for all of them: that is what makes a backlog fast to catch up.
    """
    hotspot = flow_hotspot(db, hotspot_name)
    q.begin_import(db, hotspot.id)
    bin_length = policy.bin_length
    new = q.begin_batches(db, hotspot.id, [_header(batch, bin_length) for batch in batches], now)
    fresh = [batch for batch in batches if batch.name in new]
    replayed = tuple(batch.name for batch in batches if batch.name not in new)
    if not fresh:
        return ImportOutcome(replayed=replayed)
    debit_batch_id = min(new.values())
    sizes = _sizes_by_bin(fresh)
    bound = line_rate_bound(hotspot.max_rate_kbps, policy.bin_seconds)
    over = _cap_sizes(sizes, bound)
    grace = timedelta(seconds=policy.grace_seconds)
    windows = {start: BinWindow.of(start, bin_length, grace) for start in sizes}
    rows = _candidate_sessions(db, hotspot.id, sizes, windows)
    tariffs = {tariff_id: get_tariff(db, tariff_id).tariff for tariff_id in {row.tariff_id for row in rows}}
    tallies, unpaid = _tally_sessions(rows, sizes, windows, _PriceBands(tariffs, hotspot.timezone))
    if unpaid:
        allowance = dict.fromkeys(over, bound)
        q.store_unattributed(db, (kept for b in fresh for kept in _unpaid_counts(new[b.name], b, unpaid, allowance)))
    held = _held_traffic(over, bound, fresh, rows, windows)
    if held:
        q.hold_traffic(db, [_quarantine_row(hotspot, policy, bound, each) for each in held], now)
    debits = rate_sessions(tallies, tariffs, hotspot.timezone)
    note = f"netflow {fresh[0].name}" + (f" and {len(fresh) - 1} more batches" if len(fresh) > 1 else "")
    exhausted = q.apply_debits(db, debits, key_prefix=f"flow:{debit_batch_id}:", note=note, now=now)
    total_bytes = sum(sum(by_ip.values()) for classes in sizes.values() for by_ip in classes.values())
    attributed = sum(debits.input_octets) + sum(debits.output_octets)
    billable = sum(sum(band) for tally in tallies.values() for band in tally.by_band.values())
    outcome = ImportOutcome(
        imported=tuple(batch.name for batch in fresh),
        replayed=replayed,
        records=sum(len(batch.counts) for batch in fresh),
        sessions=len(debits.session_ids),
        billable_bytes=billable,
        free_bytes=attributed - billable,
        unattributed_bytes=total_bytes - attributed,
        debited=sum(debits.amounts),
        exhausted_accounts=tuple(exhausted),
        held=held,
    )
    totals = {
        name: getattr(outcome, name)
        for name in ("sessions", "billable_bytes", "free_bytes", "unattributed_bytes", "debited")
    }
    q.record_totals(db, list(new.values()), totals)
    return outcome


def _quarantine_row(hotspot: FlowHotspot, policy: ImportPolicy, bound: int, held: HeldTraffic) -> q.HeldRow:
    """The quarantine row of one held excess; figures beyond NUMERIC(20, 0) are capped there and kept
    exact (as text) in ``detail``."""
    detail = {
        "batch": held.batch,
        "ip": held.ip,
        "bin_start": held.bin_start.isoformat(),
        "bin_seconds": policy.bin_seconds,
        "direction": held.direction.value,
        "free": held.free,
        "bytes": str(held.reported),
        "billed_up_to": bound,
        "max_rate_kbps": hotspot.max_rate_kbps,
    }
    return q.HeldRow(
        reason=held.reason,
        quantity=held.direction.value,
        held=min(held.held, NUMERIC_20_MAX),
        reported=held.reported if held.reported <= NUMERIC_20_MAX else None,
        session_id=held.session_id,
        hotspot_id=hotspot.id,
        identity=held.identity,
        detail=detail,
        idempotency_key=f"netflow:{hotspot.id}:{held.identity}",
    )


def rate_sessions(tallies: dict[int, _SessionTally], tariffs: dict[int, Tariff], tz: ZoneInfo) -> q.SessionDebits:
    """Price each session's bytes with the core's ``rate``, band by band: one debit per session.

    The meter carries only the traffic numerator: ``rate`` rounds the time and the traffic charge each on
    its own, so the traffic debit does not depend on the session's time state.
    """
    columns: dict[str, list[int]] = {name: [] for name in q.SessionDebits.__dataclass_fields__}
    for session_id, tally in sorted(tallies.items()):  # in key order: the updates touch pages in order
        traffic = tuple(BytesAt(start, download, upload) for start, (download, upload) in tally.by_band.items())
        old = Meter(traffic_cost_num=tally.traffic_cost_num)
        rated = rate(tariffs[tally.tariff_id], tz, old, Usage(traffic=traffic))
        columns["session_ids"].append(session_id)
        columns["account_ids"].append(tally.account_id)
        columns["card_ids"].append(tally.card_id)
        columns["amounts"].append(rated.traffic_debit)
        columns["billable_bytes"].append(rated.billable_bytes)
        columns["added_cost_num"].append(rated.meter.traffic_cost_num - old.traffic_cost_num)
        # The NAS's point of view: input = from the client (upload), output = to the client (download).
        columns["input_octets"].append(tally.upload)
        columns["output_octets"].append(tally.download)
    return q.SessionDebits(**columns)


def release_held_traffic(db: Session, quarantine_id: int, now: datetime) -> int:
    """Bill a held NetFlow excess to its session after all, as an import would have: priced at the band
    in force at its bin start, on the session's meter (ledger cause 'traffic', key
    'release:<quarantine id>:<session id>'); returns the minor units debited.

    Only bills: the caller marks the row released in the same transaction (a row no longer 'held' is
    refused, so it is never billed twice)."""
    row = q.held_traffic(db, quarantine_id)
    if row is None:
        raise NotFound(f"no quarantine row {quarantine_id}")
    if row.source != "netflow":
        raise ServiceError(f"quarantine row {quarantine_id} holds {row.source} usage, not NetFlow traffic")
    if row.state != "held":
        raise ServiceError(f"quarantine row {quarantine_id} is {row.state}, not held: nothing to bill")
    if row.meter is None:
        raise ServiceError(
            f"quarantine row {quarantine_id} has no session: no session held the IP then, so there is nobody to bill"
        )
    if row.meter.account_id is None:
        raise ServiceError(f"session {row.meter.session_id} of quarantine row {quarantine_id} has no account yet")
    held = int(row.held)
    if held > MAX_BIGINT:
        raise ServiceError(
            f"quarantine row {quarantine_id} holds {held} bytes, more than any counter can hold "
            "(beyond BIGINT): it cannot be billed, only dismissed"
        )
    q.begin_import(db, row.meter.hotspot_id)  # the meter is read and moved as by an import: one at a time
    meter = q.session_meter(db, row.meter.session_id)  # as it is now that imports wait
    assert meter.account_id is not None, "a session's account, once set, stays"
    tariff = get_tariff(db, meter.tariff_id).tariff
    bin_start = datetime.fromisoformat(row.detail["bin_start"])
    download = held if row.quantity == Direction.DOWNLOAD.value else 0
    upload = held - download
    tally = _SessionTally(
        meter.account_id, meter.card_id, meter.tariff_id, meter.traffic_cost_num, download=download, upload=upload
    )
    tally.by_band[bin_start] = [0, 0] if row.detail.get("free") else [download, upload]
    tz = ZoneInfo(meter.timezone)
    debits = rate_sessions({meter.session_id: tally}, {meter.tariff_id: tariff}, tz)
    after = (
        meter.traffic_cost_num + debits.added_cost_num[0],
        meter.input_octets + upload,
        meter.output_octets + download,
    )
    if max(after) > MAX_BIGINT:
        raise ServiceError(
            f"quarantine row {quarantine_id}: {held} bytes would take session {meter.session_id}'s "
            "counters beyond BIGINT: it cannot be billed, only dismissed"
        )
    q.apply_debits(
        db,
        debits,
        key_prefix=f"release:{quarantine_id}:",
        note=f"netflow quarantine {quarantine_id} released",
        now=now,
    )
    return sum(debits.amounts)


def accounts_exhausted_with_open_sessions(db: Session, hotspot_id: int | None = None) -> list[q.ExhaustedSession]:
    """Open sessions of exhausted accounts (optionally of one hotspot), for the enforcement worker.

    With NetFlow metering a guest can overshoot zero by at most the traffic of one export interval (the
    exporter's active timeout plus one bin) plus one import cycle before this lists the session.
    """
    return q.exhausted_open_sessions(db, hotspot_id)


@dataclass(frozen=True)
class ImportStatus:
    hotspot: str
    last_batch: str | None
    last_bin_end: datetime | None
    last_imported_at: datetime | None
    lag_seconds: int | None  # now - end of the newest imported bin
    batches: int
    records: int
    malformed: int
    billable_bytes: int
    free_bytes: int
    unattributed_bytes: int
    debited: int


def import_status(db: Session, hotspot_name: str, now: datetime, window: timedelta) -> ImportStatus:
    """Progress of the import for one hotspot: the newest batch, the lag, and totals over ``window``."""
    hotspot = flow_hotspot(db, hotspot_name)
    row = q.import_status(db, hotspot.id, now - window)
    lag = None if row.last_bin_end is None else int((now - row.last_bin_end).total_seconds())
    return ImportStatus(
        hotspot=hotspot.name,
        last_batch=row.last_batch,
        last_bin_end=row.last_bin_end,
        last_imported_at=row.last_imported_at,
        lag_seconds=lag,
        batches=int(row.batches),
        records=int(row.records),
        malformed=int(row.malformed),
        billable_bytes=int(row.billable_bytes),
        free_bytes=int(row.free_bytes),
        unattributed_bytes=int(row.unattributed_bytes),
        debited=int(row.debited),
    )
