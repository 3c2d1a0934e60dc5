"""FreeRADIUS detail files read back as accounting packets: what radiusd writes, and what it leaves torn."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from rlm_hotspot.radius.decode import decode_accounting
from rlm_hotspot.radius.detail import parse, pieces

ENTRY = (
    b"Mon Dec  7 12:00:00 2026\n"
    b"\tAcct-Status-Type = Interim-Update\n"
    b'\tUser-Name = "0001 2345 678"\n'
    b'\tAcct-Session-Id = "S\\"1\\\\x"\n'
    b"\tNAS-IP-Address = 192.0.2.1\n"
    b"\tAcct-Session-Time = 300\n"
    b"\tAcct-Input-Octets = 7\n"
    b"\tAcct-Input-Gigawords = 1\n"
    b"\tClass = 0x68733a746f6b656e\n"
    b"\tTimestamp = 1796644800\n"
    b"\n"
)


def test_an_entry_reads_as_the_hook_reads_its_packet() -> None:
    parsed = parse(ENTRY)
    [entry] = parsed.entries
    assert (entry.first_byte, entry.end_byte, parsed.end_byte) == (0, len(ENTRY), len(ENTRY))
    assert entry.written_at == datetime.fromtimestamp(1796644800, UTC)
    update = decode_accounting(entry.attributes)
    assert (update.status, update.username, update.acct_session_id) == ("interim", "0001 2345 678", 'S"1\\x')
    assert (update.session_time, update.input_octets, update.token) == (300, (1 << 32) | 7, "token")


def test_a_torn_last_entry_is_left_unread_and_the_next_read_resumes_at_an_entry() -> None:
    data = ENTRY + ENTRY[:-30]  # radiusd still writing the second
    parsed = parse(data)
    assert len(parsed.entries) == 1 and parsed.end_byte == len(ENTRY)
    again = parse(data + ENTRY[-30:] + ENTRY, parsed.end_byte)
    assert [e.first_byte for e in again.entries] == [len(ENTRY), 2 * len(ENTRY)]


def test_bytes_that_are_not_utf8_are_kept_as_the_hook_keeps_them_and_junk_lines_are_counted() -> None:
    entry = (
        b"Mon Dec  7 12:00:00 2026\n"
        b"\tAcct-Status-Type = Stop\n"
        b'\tUser-Name = "Jos\\351"\n'  # rlm_detail writes a byte that is not UTF-8 in octal
        b'\tCalling-Station-Id = "caf\xe9"\n'  # or raw, from a writer that does not escape
        b"\tHotspot-Raw-Acct-Session-Id = 0x53e9\n"
        b"\tHotspot-Raw-User-Password = not-octets\n"  # only the site writes these: never anything but octets
        b"this line is not an attribute\n"
        b"\tNAS-IP-Address = 192.0.2.1\n"
        b"\n"
    )
    [parsed] = parse(entry).entries
    assert parsed.attributes.first("User-Name") == "Jos\\xe9"
    assert parsed.attributes.first("Calling-Station-Id") == "caf\\xe9"
    assert parsed.attributes.first("Acct-Session-Id") == "S\\xe9"
    assert parsed.attributes.first("User-Password") is None
    assert parsed.skipped_lines == 2


def test_the_exact_receive_time_the_site_writes_is_read_to_the_microsecond() -> None:
    """Hotspot-Received-At (radiusd's %l.%M) gives the event its microseconds; an entry written before the
    upgrade, without it, or with a value radiusd never writes, is read at its whole-second Timestamp as before."""
    whole = datetime.fromtimestamp(1796644800, UTC)
    exact = ENTRY.replace(b"\tTimestamp", b'\tHotspot-Received-At = "1796644800.000042"\n\tTimestamp')
    [entry] = parse(exact).entries
    assert entry.written_at == whole + timedelta(microseconds=42)
    for value in (b"1796644800", b"1796644800.42", b"-1.000000", b"1796644800.0000001", b""):
        odd = ENTRY.replace(b"\tTimestamp", b'\tHotspot-Received-At = "' + value + b'"\n\tTimestamp')
        assert parse(odd).entries[0].written_at == whole, value
    assert parse(ENTRY).entries[0].written_at == whole


def test_without_a_timestamp_the_header_says_when_it_was_written() -> None:
    entry = b"Mon Dec  7 12:00:00 2026\n\tAcct-Status-Type = Start\n\n"
    [parsed] = parse(entry).entries
    assert parsed.written_at is not None  # radiusd's local time, whatever the zone of this machine
    [bare] = parse(b"\tAcct-Status-Type = Start\n\n").entries  # neither: the importer uses the time it reads it
    assert bare.written_at is None and bare.attributes.first("Acct-Status-Type") == "Start"


def test_an_attribute_reads_the_same_whatever_the_spacing_and_operator_around_its_value() -> None:
    """radiusd writes `\\tName = value` (read without the general pattern); any other spelling the format allows
    gives the same attribute, and a line with an invalid name is no attribute."""
    plain = parse(b'Mon Dec  7 12:00:00 2026\n\tUser-Name = "a b"\n\tAcct-Session-Time = 300 \r\n\n')
    for spelling in (
        b'\tUser-Name  = "a b"\n\tAcct-Session-Time := 300\n',
        b' User-Name= "a b" \n\t\tAcct-Session-Time += 300\n',
        b'\tUser-Name = "a b"\n\tAcct-Session-Time = 300\n\tBad Name = 1\n',
    ):
        [entry] = parse(b"Mon Dec  7 12:00:00 2026\n" + spelling + b"\n").entries
        assert entry.attributes == plain.entries[0].attributes
        assert entry.skipped_lines == spelling.count(b"Bad Name")
    [quoted] = parse(b'Mon Dec  7 12:00:00 2026\n\tUser-Name = "a = \\"b\\""\n\n').entries
    assert quoted.attributes.first("User-Name") == 'a = "b"'


def test_a_file_cut_short_inside_an_entry_then_appended_to_keeps_the_torn_rest_apart() -> None:
    """After a power cut the file ends inside an entry (or in zeros where its size outran its data) and radiusd,
    started again, appends: the torn rest is left out, not read as one entry with the next packet's attributes."""
    for cut in (ENTRY[:-60], ENTRY[:-60] + b"\0" * 100, ENTRY[: ENTRY.index(b"\tNAS-IP")]):
        data = ENTRY + cut + ENTRY
        parsed = parse(data)
        assert [e.first_byte for e in parsed.entries] == [0, len(ENTRY) + len(cut)]
        assert parsed.torn == [(len(ENTRY), len(ENTRY) + len(cut))] and parsed.end_byte == len(data)
        assert parsed.entries[1].attributes == parsed.entries[0].attributes


def test_a_receive_time_no_date_can_hold_falls_back_to_the_next_one_the_entry_says() -> None:
    """A restored or hand-edited spool: a Hotspot-Received-At or Timestamp beyond the year 9999 (or not ASCII
    digits) is no time; the entry is read at the next one it gives, never raising out of the parser."""
    whole = datetime.fromtimestamp(1796644800, UTC)
    huge = ENTRY.replace(b"\tTimestamp", b'\tHotspot-Received-At = "999999999999.000000"\n\tTimestamp')
    assert parse(huge).entries[0].written_at == whole
    header = parse(b"Mon Dec  7 12:00:00 2026\n\tAcct-Status-Type = Start\n\n").entries[0].written_at
    for stamp in (b"999999999999", b"99999999999999999999", "\u00b2".encode()):
        entry = b"Mon Dec  7 12:00:00 2026\n\tAcct-Status-Type = Start\n\tTimestamp = " + stamp + b"\n\n"
        assert parse(entry).entries[0].written_at == header, stamp


@settings(max_examples=200, deadline=None)
@given(
    layout=st.lists(st.sampled_from(["whole", "blank", "torn", "zeros", "long"]), min_size=1, max_size=24),
    torn_end=st.booleans(),
    piece_bytes=st.integers(1, 2 * len(ENTRY)),
    resume=st.integers(0, 3),
)
def test_a_file_read_in_pieces_reads_as_the_whole_file_parsed_at_once(
    layout: list[str], torn_end: bool, piece_bytes: int, resume: int
) -> None:
    """A backlog is read a piece at a time (memory bounded by the piece, not the file): whatever the pieces'
    size — smaller than an entry, cutting a torn entry or a blank line — the entries, their byte ranges, the
    torn ones and the end are those of the whole file parsed at once, from any entry it resumes at."""
    long_entry = ENTRY.replace(b'"0001 2345 678"', b'"' + b"x" * 3 * len(ENTRY) + b'"')
    parts = {"whole": ENTRY, "blank": b"\n", "torn": ENTRY[:-40], "zeros": b"\0" * 50, "long": long_entry}
    data = b"".join(parts[kind] for kind in layout) + (ENTRY[:-1] if torn_end else b"")
    starts = [0, *(e.end_byte for e in parse(data).entries)]
    offset = starts[min(resume, len(starts) - 1)]
    whole = parse(data, offset)

    read = list(pieces(io.BytesIO(data), offset, piece_bytes))

    assert [e for piece in read for e in piece.entries] == whole.entries
    assert [t for piece in read for t in piece.torn] == whole.torn
    assert read[-1].end_byte == whole.end_byte
    spans = [piece.entries[-1].end_byte - piece.entries[0].first_byte for piece in read if piece.entries]
    assert max(spans, default=0) <= max(piece_bytes, 4 * len(long_entry))  # a piece, or a long entry read whole
