"""The importer's entry points, for `hotspotctl flows run|import|status`: the CLI parses options, these run.

`run` is the hotspot-flows service, set up as every importer is (`rlm_hotspot.spool_importer`): an engine of
its own (one connection, a statement timeout long enough for a batch of 20,000 sessions), its metrics,
SIGTERM/SIGINT ending the loop after the current cycle.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flowimport.health import SpoolBacklog, spool_backlog, udp_drops
from flowimport.importer import CycleReport, Failure, Importer, ImporterSettings, read_failing
from flowimport.metrics import Metrics
from flowimport.spool import FAILED
from rlm_hotspot.settings import Settings
from rlm_hotspot.spool_importer import importer_process, run_service

# What `hotspotctl flows` uses, all from here (setup.cfg: the CLI imports only the adapters' entry points).
__all__ = ["CycleReport", "ImporterSettings", "SpoolState", "import_files", "run", "spool_state", "udp_drops"]


def run(
    settings: Settings,
    importer_settings: ImporterSettings,
    *,
    once: bool = False,
    metrics_port: int | None = None,
    metrics_address: str = "127.0.0.1",
) -> CycleReport:
    """Import settled spool files in a loop until SIGTERM or SIGINT (one pass with `once`); returns the last
    cycle's report."""
    with _importer(settings, importer_settings) as importer:
        return run_service(importer, once=once, metrics_port=metrics_port, metrics_address=metrics_address)


def import_files(settings: Settings, importer_settings: ImporterSettings, files: list[Path]) -> CycleReport:
    """Import the complete blocks of these spool files now (blocks imported before are skipped)."""
    with _importer(settings, importer_settings) as importer:
        return importer.import_files(files)


@dataclass(frozen=True)
class SpoolState:
    """What waits in a spool directory: the backlog, the imports that keep failing, the files moved aside."""

    backlog: SpoolBacklog
    failing: list[Failure]
    failed_files: list[str]  # names in FAILED, oldest first
    failed_dir: Path


def spool_state(spool: Path) -> SpoolState:
    """The spool's state (OSError, ValueError, TypeError: it cannot be read)."""
    failed = sorted(path.name for path in (spool / FAILED).glob("*.json"))
    return SpoolState(spool_backlog(spool), read_failing(spool), failed, spool / FAILED)


@contextmanager
def _importer(settings: Settings, importer_settings: ImporterSettings) -> Iterator[Importer]:
    with importer_process(settings, "hotspot-flows") as sessions:
        yield Importer(importer_settings, sessions, Metrics(importer_settings.hotspot))
