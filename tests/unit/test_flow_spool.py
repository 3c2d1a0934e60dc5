"""Reading nfacctd spool files: purge blocks, the settled-file rule, malformed lines skipped and counted."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flowimport.spool import SpoolFile, pending_files, read_blocks
from rlm_hotspot.services.flows import Direction, FlowBatch

BIN = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
STAMP = str(int(BIN.timestamp()))


def purge(ip: str, size: int, tag: int = 2, field: str = "ip_dst") -> dict[str, object]:
    return {"event_type": "purge", "tag": tag, field: ip, "stamp_inserted": STAMP, "stamp_updated": STAMP,
            "packets": 1, "bytes": size}


def block(writer: str, *records: dict[str, object], close: bool = True) -> list[str]:
    lines = [json.dumps({"event_type": "purge_init", "writer_id": writer})]
    lines += [json.dumps(record) for record in records]
    if close:
        lines.append(json.dumps({"event_type": "purge_close", "writer_id": writer, "purged_entries": len(records),
                                 "total_entries": len(records), "duration": 0}))
    return lines


def complete_batches(spool_file: SpoolFile) -> list[FlowBatch]:
    """The batches of the file's complete blocks, as the importer takes them."""
    return [block.batch(spool_file) for block in read_blocks(spool_file) if block.complete]


def spool_file(tmp_path: Path, lines: list[str], name: str = "down-20261125-120000.json") -> SpoolFile:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    parsed = SpoolFile.parse_name(path)
    assert parsed is not None
    return parsed


def test_each_closed_block_is_one_batch_with_a_stable_name(tmp_path: Path) -> None:
    lines = block("down/17033", purge("10.1.0.11", 28920), purge("10.1.0.12", 5, tag=1)) + block(
        "down/17099", purge("10.1.0.11", 7))
    first = spool_file(tmp_path, lines)
    batches = list(complete_batches(first))
    assert [len(b.counts) for b in batches] == [2, 1]
    assert batches[0].direction is Direction.DOWNLOAD
    assert batches[0].counts[0].bin_start == BIN
    assert [(c.ip, c.bytes, c.free) for c in batches[0].counts] == [("10.1.0.11", 28920, False), ("10.1.0.12", 5, True)]
    assert batches[0].name.startswith("down-20261125-120000.json#down/17033#")
    again = [b.name for b in complete_batches(spool_file(tmp_path, lines))]
    assert again == [b.name for b in batches]
    # Same writer id, different content (a re-created file after a restart): a different batch.
    other = spool_file(tmp_path, block("down/17033", purge("10.1.0.11", 1)))
    assert complete_batches(other)[0].name != batches[0].name


def test_an_unclosed_block_is_never_used(tmp_path: Path) -> None:
    lines = block("down/1", purge("10.1.0.11", 100)) + block("down/2", purge("10.1.0.12", 200), close=False)
    blocks = read_blocks(spool_file(tmp_path, lines))
    assert [b.complete for b in blocks] == [True, False]
    assert [len(b.counts) for b in complete_batches(spool_file(tmp_path, lines))] == [1]


def test_a_block_holding_fewer_records_than_announced_is_damaged(tmp_path: Path) -> None:
    lines = block("down/1", purge("10.1.0.11", 100), purge("10.1.0.12", 100))
    del lines[2]  # a lost line: purge_close still says 2
    (only,) = read_blocks(spool_file(tmp_path, lines))
    assert only.damaged and not only.complete


def test_malformed_lines_are_skipped_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    records = [
        purge("10.1.0.11", 100),
        purge("not-an-ip", 1),
        purge("10.1.0.12", -5),
        purge("10.1.0.13", 5, tag=0),
        {"event_type": "purge", "tag": 2, "ip_src": "10.1.0.14", "bytes": 1},  # wrong direction's field
        {**purge("10.1.0.15", 1), "stamp_inserted": "yesterday"},
        purge("2001:db8::7", 9),
    ]
    lines = block("down/1", *records)
    lines.insert(3, '{"event_type": "purge", "tag": 2, "ip_dst": "10.1.0.16", "byt')  # a torn line
    lines[-1] = lines[-1].replace('"purged_entries": 7', '"purged_entries": 8')
    (batch,) = complete_batches(spool_file(tmp_path, lines))
    assert [(c.ip, c.bytes) for c in batch.counts] == [("10.1.0.11", 100), ("2001:db8::7", 9)]
    assert batch.malformed == 6
    assert "skipped malformed line" in caplog.text and "pre_tag_map" in caplog.text


def test_upload_files_read_the_source_address(tmp_path: Path) -> None:
    lines = block("up/1", purge("10.1.0.11", 100, field="ip_src"))
    (batch,) = complete_batches(spool_file(tmp_path, lines, "up-20261125-120000.json"))
    assert batch.direction is Direction.UPLOAD and batch.counts[0].ip == "10.1.0.11"


def test_settled_and_final_rules(tmp_path: Path) -> None:
    parsed = spool_file(tmp_path, block("down/1"))
    written = BIN + timedelta(seconds=61)
    os.utime(parsed.path, (written.timestamp(), written.timestamp()))
    settle, minute = timedelta(seconds=10), timedelta(minutes=1)
    assert not parsed.is_settled(written + timedelta(seconds=9), settle)
    assert parsed.is_settled(written + timedelta(seconds=10), settle)
    # Final only once the bin and the refresh that purges it are over (no more blocks can be appended).
    assert not parsed.is_final(BIN + timedelta(seconds=129), settle, minute)
    assert parsed.is_final(BIN + timedelta(seconds=130), settle, minute)


def test_pending_files_are_spool_names_only_oldest_bin_first(tmp_path: Path) -> None:
    for name in ("up-20261125-120100.json", "down-20261125-120000.json", "down-20261125-120000-memory.json",
                 "notes.txt", ".down-1.tmp", "down-2026.json"):
        (tmp_path / name).write_text("")
    (tmp_path / "done").mkdir()
    assert [f.path.name for f in pending_files(tmp_path)] == [
        "down-20261125-120000-memory.json", "down-20261125-120000.json", "up-20261125-120100.json"]


def test_lines_that_used_to_crash_the_reader_are_malformed(tmp_path: Path) -> None:
    records = [purge("10.1.0.11", 100), {**purge("10.1.0.12", 1), "stamp_inserted": "9" * 30},
               purge("10.1.0.13\u0000", 1)]
    (batch,) = complete_batches(spool_file(tmp_path, block("down/1", *records)))
    assert [(c.ip, c.bytes) for c in batch.counts] == [("10.1.0.11", 100)] and batch.malformed == 2


def test_the_batch_name_is_the_same_whether_a_block_is_read_in_bulk_or_line_by_line(tmp_path: Path) -> None:
    good = block("down/1", purge("10.1.0.11", 100), purge("10.1.0.12", 7, tag=1))
    (bulk,) = complete_batches(spool_file(tmp_path, good))
    # A blank line sends the block down the line-by-line path; it is not part of the digest.
    (by_line,) = complete_batches(spool_file(tmp_path, [*good[:2], "", *good[2:]]))
    assert bulk.name == by_line.name and list(bulk.counts) == list(by_line.counts)
