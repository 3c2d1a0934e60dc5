"""Use cases of NetFlow traffic billing: import one batch of per-client byte counts, exactly once.

A batch is what one nfacctd purge wrote for one direction: (client IP, bin start, free?, bytes) rows.
Importing it, in the caller's transaction:

1. records the batch (a replayed or re-delivered batch stops here and changes nothing);
2. attributes each (IP, bin) to the session of the hotspot that held the IP (set-based, in the DB layer);
   what no session held is stored as unattributed, never billed;
3. rates each session's bytes with the core: billable bytes per the tariff's direction, priced at the
   band in force at the bin start in the hotspot's time zone, on the session's cumulative meter, so the
   debit is ``charged(new) - charged(old)`` and rounding never accumulates;
4. applies every debit in one statement (ledger cause 'traffic', key = batch + session).

Only hotspots whose ``traffic_meter`` is 'netflow' are billed this way (one meter per quantity).
Bytes are IP-layer bytes (IP header + payload), as NetFlow counts them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import NamedTuple, overload
from zoneinfo import ZoneInfo

from sqlalchemy import Row
from sqlalchemy.orm import Session

from rlm_hotspot.core.tariff import Meter, Tariff, advance_traffic, band_at, billable_bytes, debit
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


@dataclass(frozen=True)
class FlowHotspot:
    id: int
    name: str
    timezone: ZoneInfo


def flow_hotspot(session: Session, name: str) -> FlowHotspot:
    """The hotspot, refused unless its traffic is metered by NetFlow (never bill bytes twice)."""
    row = q.hotspot(session, name)
    if row is None:
        raise NotFound(f"no hotspot {name!r}")
    if row.traffic_meter != "netflow":
        raise ServiceError(
            f"hotspot {name!r} meters traffic by {row.traffic_meter}, not netflow: importing its flows would bill "
            "the same bytes twice (set the hotspot's traffic meter to netflow first)"
        )
    return FlowHotspot(row.id, row.name, ZoneInfo(row.timezone))


@dataclass(frozen=True)
class CollectorInputs:
    """What the collector configuration needs from the database for one hotspot."""

    free_networks: tuple[str, ...]
    traffic_meter: str


def collector_inputs(session: Session, hotspot_name: str) -> CollectorInputs:
    """The free networks of the hotspot's tariff (tagged free by the pre_tag_map) and its traffic meter."""
    row = q.hotspot(session, hotspot_name)
    if row is None:
        raise NotFound(f"no hotspot {hotspot_name!r}")
    return CollectorInputs(get_tariff(session, row.tariff_id).spec.free_networks, row.traffic_meter)


def _header(batch: FlowBatch, bin_length: timedelta) -> q.BatchHeader:
    starts = batch.counts.bin_starts or [batch.bin_start]
    return q.BatchHeader(
        name=batch.name,
        direction=batch.direction.value,
        bin_start=min(starts),
        bin_end=max(starts) + bin_length,
        records=len(batch.counts),
        malformed=batch.malformed,
    )


def _count_rows(batch_id: int, batch: FlowBatch) -> q.CountRows:
    counts = batch.counts
    download = batch.direction is Direction.DOWNLOAD
    return q.CountRows(batch_id, download, counts.ips, counts.bin_starts, counts.free, counts.sizes)


def import_batches(
    session: Session, hotspot_name: str, batches: Sequence[FlowBatch], now: datetime, policy: ImportPolicy
) -> ImportOutcome:
    """Attribute, rate and debit batches (see the module docstring) in the caller's transaction.

    Several batches (both directions of a bin, or a backlog) cost the same few statements as one, and
    each session gets one debit for all of them: that is what makes a backlog fast to catch up.
    """
    hotspot = flow_hotspot(session, hotspot_name)
    q.begin_import(session, hotspot.id)
    bin_length = timedelta(seconds=policy.bin_seconds)
    new = q.begin_batches(session, hotspot.id, [_header(batch, bin_length) for batch in batches], now)
    fresh = [batch for batch in batches if batch.name in new]
    replayed = tuple(batch.name for batch in batches if batch.name not in new)
    if not fresh:
        return ImportOutcome(replayed=replayed)
    debit_batch_id = min(new.values())
    q.load_counts(session, [_count_rows(new[batch.name], batch) for batch in fresh])
    rows = q.attribute_counts(
        session, hotspot_id=hotspot.id, bin_seconds=policy.bin_seconds, grace_seconds=policy.grace_seconds
    )
    tariffs = {tariff_id: get_tariff(session, tariff_id).tariff for tariff_id in {row.tariff_id for row in rows}}
    debits = rate_sessions(rows, tariffs, hotspot.timezone)
    note = f"netflow {fresh[0].name}" + (f" and {len(fresh) - 1} more batches" if len(fresh) > 1 else "")
    exhausted = q.apply_debits(session, debits, debit_batch_id=debit_batch_id, note=note, now=now)
    total_bytes = sum(sum(batch.counts.sizes) for batch in fresh)
    attributed = sum(debits.input_octets) + sum(debits.output_octets)
    billable = sum(row.download_billable + row.upload_billable for row in rows)
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
    )
    totals = {
        name: getattr(outcome, name)
        for name in ("sessions", "billable_bytes", "free_bytes", "unattributed_bytes", "debited")
    }
    q.record_totals(session, list(new.values()), totals)
    return outcome


def rate_sessions(rows: list[Row], tariffs: dict[int, Tariff], tz: ZoneInfo) -> q.SessionDebits:  # type: ignore[type-arg]
    """Price each session's (bin, bytes) rows with the core: one debit per session.

    Bytes are priced at the band in force at their bin's start. Pricing and ``billable_bytes`` are linear,
    so bins in the same band are summed first and the core is called once per session and band: a
    backlog of many bins costs no more core calls than one bin. The meter carries only the traffic
    numerator: ``charged`` is a time part plus a traffic part, each rounded on its own, so the traffic
    debit ``charged(new) - charged(old)`` does not depend on the session's time state.
    """
    priced_at: dict[tuple[int, datetime], datetime] = {}  # (tariff, bin) → the first bin seen in its band
    first_in_band: dict[tuple[int, int], datetime] = {}  # (tariff, band start minute) → that bin
    sessions: dict[int, _SessionTally] = {}
    for session_id, bin_start, account_id, card_id, tariff_id, cost_num, down, up, down_all, up_all in rows:
        key = (tariff_id, bin_start)
        instant = priced_at.get(key)
        if instant is None:
            minute = band_at(tariffs[tariff_id], tz, bin_start).start_minute
            instant = priced_at[key] = first_in_band.setdefault((tariff_id, minute), bin_start)
        tally = sessions.get(session_id)
        if tally is None:
            tally = sessions[session_id] = _SessionTally(account_id, card_id, tariff_id, cost_num)
        band = tally.by_band.setdefault(instant, [0, 0])
        band[0] += down
        band[1] += up
        tally.upload += up_all
        tally.download += down_all
    columns: dict[str, list[int]] = {name: [] for name in q.SessionDebits.__dataclass_fields__}
    for session_id, tally in sorted(sessions.items()):  # in key order: the updates touch pages in order
        tariff = tariffs[tally.tariff_id]
        old = meter = Meter(traffic_cost_num=tally.traffic_cost_num)
        billed = 0
        for instant, (down, up) in tally.by_band.items():
            billable = billable_bytes(tariff, down, up)
            meter = advance_traffic(tariff, tz, instant, meter, billable)
            billed += billable
        columns["session_ids"].append(session_id)
        columns["account_ids"].append(tally.account_id)
        columns["card_ids"].append(tally.card_id)
        columns["amounts"].append(debit(old, meter, tariff))
        columns["billable_bytes"].append(billed)
        columns["added_cost_num"].append(meter.traffic_cost_num - old.traffic_cost_num)
        # The NAS's point of view: input = from the client (upload), output = to the client (download).
        columns["input_octets"].append(tally.upload)
        columns["output_octets"].append(tally.download)
    return q.SessionDebits(**columns)


@dataclass(slots=True)
class _SessionTally:
    """One session's bytes in one import: billable (download, upload) per band, all bytes each way."""

    account_id: int
    card_id: int
    tariff_id: int
    traffic_cost_num: int
    by_band: dict[datetime, list[int]] = field(default_factory=dict)
    upload: int = 0
    download: int = 0


@dataclass(frozen=True)
class ExhaustedSession:
    """An open session whose account is at or below zero: the worker must cut it."""

    session_id: int
    account_id: int
    balance: int
    hotspot_id: int
    nas_id: int | None
    source: str
    framed_ip: str | None
    acct_session_id: str | None


def accounts_exhausted_with_open_sessions(session: Session, hotspot_id: int | None = None) -> list[ExhaustedSession]:
    """Open sessions of exhausted accounts (optionally of one hotspot), for the enforcement worker.

    With NetFlow metering a guest can overshoot zero by at most the traffic of one export interval (the
    exporter's active timeout plus one bin) plus one import cycle before this lists the session.
    """
    return [
        ExhaustedSession(
            session_id=row.session_id,
            account_id=row.account_id,
            balance=row.balance,
            hotspot_id=row.hotspot_id,
            nas_id=row.nas_id,
            source=row.source,
            framed_ip=None if row.framed_ip is None else str(row.framed_ip),
            acct_session_id=row.acct_session_id,
        )
        for row in q.exhausted_open_sessions(session, hotspot_id)
    ]


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


def import_status(session: Session, hotspot_name: str, now: datetime, window: timedelta) -> ImportStatus:
    """Progress of the import for one hotspot: the newest batch, the lag, and totals over ``window``."""
    hotspot = flow_hotspot(session, hotspot_name)
    row = q.import_status(session, hotspot.id, now - window)
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
