"""Spool lines no nfacctd writes, but a damaged disk, a bug or a hand can: each is skipped and counted,
never an exception out of the reader (which would stop the import loop)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flowimport.spool import SpoolFile, read_blocks
from tests.unit.test_flow_spool import complete_batches

BIN = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
STAMP = str(int(BIN.timestamp()))


def record(ip: str = "10.1.0.11", size: object = 100, stamp: object = STAMP) -> str:
    # nfacctd's exact layout (the bulk reader's), unless a field makes it something else
    return json.dumps(
        {
            "event_type": "purge",
            "tag": 2,
            "ip_dst": ip,
            "stamp_inserted": stamp,
            "stamp_updated": STAMP,
            "packets": 1,
            "bytes": size,
        }
    )


def write(tmp_path: Path, lines: list[str], writer: str = "down/1") -> SpoolFile:
    body = [
        json.dumps({"event_type": "purge_init", "writer_id": writer}),
        *lines,
        json.dumps({"event_type": "purge_close", "writer_id": writer, "purged_entries": len(lines)}),
    ]
    path = tmp_path / "down-20261125-120000.json"
    path.write_text("\n".join(body) + "\n")
    parsed = SpoolFile.parse_name(path)
    assert parsed is not None
    return parsed


@pytest.mark.parametrize(
    "bad",
    [
        record(stamp=[1]),  # an unhashable stamp: was a TypeError out of the reader
        record(stamp={"a": 1}),
        record(size="9" * 5000),  # digits as text
        '{"event_type": "purge", "tag": 2, "ip_dst": "10.1.0.12", "stamp_inserted": "'
        + STAMP
        + '", "stamp_updated": "1", "packets": 1, "bytes": '
        + "9" * 5000
        + "}",  # int() refuses 4,300+ digits
        "[" * 100_000,  # json: RecursionError, not a ValueError
        record(stamp="1"),  # 1970, in a file of 2026
        record(stamp=str(int(BIN.timestamp()) + 7200)),  # two hours after the file's bin
        record(stamp="9" * 30),
        record(size=-5),
        record(size=1.5),
        record(size=True),
        '{"event_type": "purge", "tag": 2, "ip_dst": "10.1.0.1',  # cut mid-line
        b"\xff\xfe{not utf-8}".decode("latin-1"),
    ],
)
def test_a_poison_line_is_skipped_and_counted_and_the_good_ones_kept(tmp_path: Path, bad: str) -> None:
    (batch,) = complete_batches(write(tmp_path, [record("10.1.0.11", 100), bad, record("10.1.0.13", 300)]))
    assert [(c.ip, c.bytes) for c in batch.counts] == [("10.1.0.11", 100), ("10.1.0.13", 300)]
    assert batch.malformed == 1


def test_a_count_of_many_digits_is_read_whole_for_the_quarantine(tmp_path: Path) -> None:
    (batch,) = complete_batches(write(tmp_path, [record(size=10**20), record("10.1.0.12", size=10**25)]))
    assert [c.bytes for c in batch.counts] == [10**20, 10**25]


def test_a_writer_id_cannot_make_a_batch_name_unrecordable(tmp_path: Path) -> None:
    (batch,) = complete_batches(write(tmp_path, [record()], writer="down/\x00" + "x" * 10_000))
    name = batch.name.split("#")
    assert name[1] == "down/" + "x" * 59 and len(batch.name) < 200


def test_a_truncated_file_keeps_its_closed_blocks_only(tmp_path: Path) -> None:
    spool_file = write(tmp_path, [record(), record("10.1.0.12")])
    data = spool_file.path.read_bytes()
    spool_file.path.write_bytes(data + data[: len(data) // 2])  # a second block, cut in the middle
    blocks = read_blocks(spool_file)
    assert [b.complete for b in blocks] == [True, False]
