"""Tariffs and NAS change rarely and are read on every login and accounting packet: keep them in memory
for a short time, so the hot paths stay one database round trip."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rlm_hotspot.db.engine import Executor
from rlm_hotspot.db.sessions import PacketNas, nas_by_ip
from rlm_hotspot.services.catalog import StoredTariff, get_tariff


@dataclass
class TariffCache:
    """Tariffs by id, each reloaded after `ttl` (a price change reaches every process within it)."""

    ttl: timedelta = timedelta(seconds=30)
    _entries: dict[int, tuple[datetime, StoredTariff]] = field(default_factory=dict)

    def get(self, db: Executor, tariff_id: int, now: datetime) -> StoredTariff:
        cached = self._entries.get(tariff_id)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        tariff = get_tariff(db, tariff_id)
        self._entries[tariff_id] = (now, tariff)
        return tariff

    def clear(self) -> None:
        self._entries.clear()


@dataclass
class NasCache:
    """NAS rows by address, each reloaded after `ttl`; an unknown address is not cached (it may be added)."""

    ttl: timedelta = timedelta(seconds=30)
    _entries: dict[str, tuple[datetime, PacketNas]] = field(default_factory=dict)

    def get(self, db: Executor, address: str, now: datetime) -> PacketNas | None:
        cached = self._entries.get(address)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        row = nas_by_ip(db, address)
        if row is not None:
            self._entries[address] = (now, row)
        return row
