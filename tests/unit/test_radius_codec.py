"""Decoding rlm_python3's attribute tuples and encoding replies: validation, 64-bit counters, vendor profiles."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlm_hotspot.pins import ChapAnswer, chap_response
from rlm_hotspot.radius.config import (
    BUFFER_MODULE,
    POLICY,
    READABLE_FILTER,
    SQL_INSTANCE,
    TEMPLATE_DIR,
    site_text,
)
from rlm_hotspot.radius.decode import (
    Attributes,
    MalformedPacket,
    decode_accounting,
    decode_login,
    event_time,
    token_from_classes,
)
from rlm_hotspot.radius.encode import MAX_UINT32, accept_reply, chilli_total_limit, reply_message
from rlm_hotspot.services.access import Grant

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def attrs(*pairs: tuple[str, str]) -> Attributes:
    return Attributes.of(pairs)


def grant(vendor: str | None, **changes: object) -> Grant:
    values: dict[str, object] = {
        "card_id": 1,
        "card_number": "00019116814",
        "account_id": None,
        "balance": 500,
        "hotspot_id": 1,
        "nas_id": 1,
        "nas_vendor": vendor,
        "tariff_id": 1,
        "session_timeout": 15000,
        "data_cap": 10 * 10**9,
        "deadline": NOW + timedelta(days=1),
        "interim_interval": 300,
        "idle_timeout": 600,
        "rate_up_kbps": 1024,
        "rate_down_kbps": 4096,
        "pin": "PIN",
    }
    return Grant(**{**values, **changes})  # type: ignore[arg-type]


def assert_items_are_str_tuples(items: tuple[tuple[str, ...], ...]) -> None:
    """radiusd drops anything that is not an exact tuple of str, silently."""
    assert isinstance(items, tuple)
    for item in items:
        assert type(item) is tuple and len(item) in (2, 3), item
        assert all(type(part) is str for part in item), item


# -- decode ------------------------------------------------------------------------------------------


def test_login_packets_pap_and_chap() -> None:
    pap = decode_login(
        attrs(
            ("User-Name", "0001 9116-814"),
            ("User-Password", "PIN"),
            ("NAS-IP-Address", "192.0.2.1"),
            ("Calling-Station-Id", "02-00-00-77-00-02"),
        )
    )
    assert (pap.card_text, pap.password, pap.chap, pap.nas_ip, pap.client) == (
        "0001 9116-814",
        "PIN",
        None,
        "192.0.2.1",
        "02:00:00:77:00:02",  # the lockout's client: the MAC in one spelling, as the portal names it
    )
    response = chap_response(7, "PIN", b"challenge")
    chap = decode_login(
        attrs(
            ("User-Name", "1"),
            ("CHAP-Password", "0x07" + response.hex()),
            ("CHAP-Challenge", "0x" + b"challenge".hex()),
            ("NAS-IP-Address", "192.0.2.1"),
            ("Framed-IP-Address", "10.0.0.7"),
        )
    )
    assert (chap.password, chap.chap, chap.client) == (None, ChapAnswer(7, response, b"challenge"), "10.0.0.7")
    assert chap.chap.matches("PIN") and not chap.chap.matches("pin")


@pytest.mark.parametrize(
    ("pairs", "complaint"),
    [
        ((("User-Password", "x"), ("NAS-IP-Address", "192.0.2.1")), "no User-Name"),
        ((("User-Name", "1"), ("NAS-IP-Address", "192.0.2.1")), "neither User-Password nor CHAP-Password"),
        ((("User-Name", "1"), ("User-Password", "x")), "no NAS-IP-Address"),
        ((("User-Name", "1"), ("User-Password", "x"), ("NAS-IP-Address", "300.1.1.1")), "not an IP address"),
        ((("User-Name", "a\x00b"), ("User-Password", "x"), ("NAS-IP-Address", "192.0.2.1")), "not printable"),
        ((("User-Name", "1" * 300), ("User-Password", "x"), ("NAS-IP-Address", "192.0.2.1")), "at most 253"),
        ((("User-Name", "1"), ("CHAP-Password", "0x01ab"), ("CHAP-Challenge", "0x01")), "2 octets, not 17"),
        ((("User-Name", "1"), ("CHAP-Password", "secret"), ("CHAP-Challenge", "0x01")), "not an octet string"),
        ((("User-Name", "1"), ("CHAP-Password", "0x" + "ab" * 17), ("CHAP-Challenge", "0xzz")), "not an octet"),
        ((("User-Name", "1"), ("CHAP-Password", "0x" + "ab" * 17)), "without a challenge"),
    ],
)
def test_malformed_login_packets_say_which_attribute(pairs: tuple[tuple[str, str], ...], complaint: str) -> None:
    with pytest.raises(MalformedPacket, match=complaint):
        decode_login(attrs(*pairs))


def test_accounting_counters_are_64_bit_and_class_carries_our_token() -> None:
    update = decode_accounting(
        attrs(
            ("Acct-Status-Type", "Interim-Update"),
            ("NAS-IP-Address", "192.0.2.1"),
            ("User-Name", "00019116814"),
            ("Acct-Session-Id", "S1"),
            ("Class", "0x" + b"ai:0123".hex()),  # somebody else's Class comes first
            ("Class", "0x" + b"hs:tok-en_1".hex()),
            ("Acct-Session-Time", "300"),
            ("Acct-Input-Octets", "5000"),
            ("Acct-Input-Gigawords", "1"),
            ("Acct-Output-Octets", "7"),
            ("Acct-Terminate-Cause", "User-Request"),
        )
    )
    assert (update.status, update.token, update.session_time) == ("interim", "tok-en_1", 300)
    assert (update.input_octets, update.output_octets) == (4294972296, 7)
    assert update.terminate_cause == "User-Request"


def test_coovachilli_client_view_is_turned_into_the_nas_view() -> None:
    base = (("Acct-Status-Type", "Start"), ("NAS-IP-Address", "192.0.2.2"))
    counters = (("Acct-Input-Octets", "9000"), ("Acct-Output-Octets", "300"))
    client_view = decode_accounting(attrs(*base, *counters, ("CoovaChilli-Acct-View-Point", "Client-View-Point")))
    nas_view = decode_accounting(attrs(*base, *counters, ("CoovaChilli-Acct-View-Point", "NAS-View-Point")))
    assert (client_view.input_octets, client_view.output_octets) == (300, 9000)
    assert (nas_view.input_octets, nas_view.output_octets) == (9000, 300)


@pytest.mark.parametrize(
    ("status", "expected"), [("Start", "start"), ("Stop", "stop"), ("Accounting-On", "on"), ("8", "off")]
)
def test_accounting_statuses(status: str, expected: str) -> None:
    assert decode_accounting(attrs(("Acct-Status-Type", status), ("NAS-IP-Address", "::1"))).status == expected


@pytest.mark.parametrize(
    "pairs",
    [
        (("Acct-Status-Type", "Failed"), ("NAS-IP-Address", "192.0.2.1")),
        (("Acct-Status-Type", "Start"), ("NAS-IP-Address", "192.0.2.1"), ("Acct-Session-Time", "-5")),
        (("Acct-Status-Type", "Start"), ("NAS-IP-Address", "192.0.2.1"), ("Acct-Input-Octets", "4294967296")),
    ],
)
def test_malformed_accounting_packets(pairs: tuple[tuple[str, str], ...]) -> None:
    with pytest.raises(MalformedPacket):
        decode_accounting(attrs(*pairs))


def test_text_handed_over_as_raw_octets_is_read_back_with_each_stray_byte_escaped() -> None:
    """The virtual server's Hotspot-Raw-* copies (a request with text that is not UTF-8): valid UTF-8 comes
    back as it was, a stray byte as \\xNN, so a session id stays the same from Start to Stop."""
    raw = Attributes.of(
        (
            ("Hotspot-Raw-User-Name", "0x" + "José".encode().hex()),
            ("Hotspot-Raw-Acct-Session-Id", "0x" + b"S\xe9-1".hex()),
            ("Hotspot-Raw-Calling-Station-Id", ""),
            ("Acct-Status-Type", "Start"),
        )
    )
    assert raw.pairs == (
        ("User-Name", "José"),
        ("Acct-Session-Id", "S\\xe9-1"),
        ("Calling-Station-Id", ""),
        ("Acct-Status-Type", "Start"),
    )


class ReadNames(Attributes):
    """Attributes that note every name the decoders look up."""

    looked_up: set[str] = set()

    def first(self, name: str) -> str | None:
        self.looked_up.add(name)
        return super().first(name)

    def values(self, name: str) -> list[str]:
        self.looked_up.add(name)
        return super().values(name)


def test_the_virtual_servers_whitelist_keeps_every_attribute_the_module_reads() -> None:
    """freeradius-config/mods-config/attr_filter/hotspot_readable: what survives in a request that had
    text that is not UTF-8 (text attributes as their Hotspot-Raw-* copies)."""
    chap = (("CHAP-Password", "0x" + "00" * 17), ("CHAP-Challenge", "0x" + "00" * 16))
    login = ReadNames((("User-Name", "1"), *chap, ("NAS-IP-Address", "192.0.2.1")))
    decode_login(login)
    accounting = ReadNames((("Acct-Status-Type", "Start"), ("NAS-IP-Address", "192.0.2.1")))
    decode_accounting(accounting)
    event_time(accounting, datetime.now(UTC))
    whitelist = (TEMPLATE_DIR / READABLE_FILTER).read_text()
    kept = set(re.findall(r"^\t([\w-]+) =\* ANY", whitelist, re.MULTILINE))
    raw = {name.removeprefix("Hotspot-Raw-") for name in kept if name.startswith("Hotspot-Raw-")}
    assert ReadNames.looked_up - raw <= kept
    assert raw == {"User-Name", "User-Password", "Acct-Session-Id", "Calling-Station-Id"}


def test_nothing_we_run_per_packet_hashes_with_radiusds_md5_xlat() -> None:
    """FreeRADIUS < 3.2.2 with OpenSSL 3 (Debian 12's 3.2.1) leaks the digest context of every `%{md5:...}`
    and `%{md4:...}`: Debian's acct_unique policy in preacct grew radiusd ~160 bytes a request without bound
    (docs/radius.md, radiusd's memory)."""
    texts = [site_text(buffered=False), site_text(buffered=True), (TEMPLATE_DIR / POLICY).read_text()]
    texts += [(TEMPLATE_DIR / "mods-available" / name).read_text() for name in (SQL_INSTANCE, BUFFER_MODULE)]
    for text in texts:
        code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
        assert not re.search(r"%\{md[45]:|\bacct_unique\b|\binsert_acct_class\b", code)


def test_event_time_subtracts_the_nas_delay() -> None:
    assert event_time(attrs(("Acct-Delay-Time", "30")), NOW) == NOW - timedelta(seconds=30)
    assert event_time(attrs(), NOW) == NOW


def test_foreign_or_broken_classes_carry_no_token() -> None:
    assert token_from_classes(["0xzz", "0x" + b"hs:".hex(), "ai:x"]) is None
    assert token_from_classes(["hs:plain"]) == "plain"


# -- encode ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vendor", ["mikrotik", "chilli", "wispr", "generic", None])
def test_accept_replies_are_tuples_of_str(vendor: str | None) -> None:
    items = accept_reply(grant(vendor), "tok")
    assert_items_are_str_tuples(items)
    assert items[:3] == (("Session-Timeout", "15000"), ("Acct-Interim-Interval", "300"), ("Class", "hs:tok"))
    assert ("Idle-Timeout", "600") in items


def test_vendor_profiles() -> None:
    cap = 10 * 10**9
    mikrotik = {
        "Mikrotik-Total-Limit": str(cap & MAX_UINT32),
        "Mikrotik-Total-Limit-Gigawords": str(cap >> 32),
        "Mikrotik-Rate-Limit": "1024k/4096k",
    }
    assert mikrotik.items() <= dict(accept_reply(grant("mikrotik"), "t")).items()
    assert dict(accept_reply(grant("mikrotik", rate_up_kbps=None), "t"))["Mikrotik-Rate-Limit"] == "0/4096k"
    chilli = dict(accept_reply(grant("chilli"), "t"))
    assert chilli["ChilliSpot-Max-Total-Octets"] == str(MAX_UINT32)
    assert (chilli["ChilliSpot-Bandwidth-Max-Up"], chilli["ChilliSpot-Bandwidth-Max-Down"]) == ("1024", "4096")
    wispr = dict(accept_reply(grant("wispr"), "t"))
    assert wispr["WISPr-Bandwidth-Max-Down"] == "4096000"
    assert wispr["WISPr-Session-Terminate-Time"] == "2026-11-26T12:00:00+00:00"
    assert len(accept_reply(grant("generic"), "t")) == 4
    assert "WISPr-Session-Terminate-Time" not in dict(accept_reply(grant("wispr", deadline=None), "t"))


def test_a_zero_cap_is_sent_as_one_byte_because_zero_means_unlimited() -> None:
    assert dict(accept_reply(grant("mikrotik", data_cap=0), "t"))["Mikrotik-Total-Limit"] == "1"
    assert dict(accept_reply(grant("chilli", data_cap=None), "t")).get("ChilliSpot-Max-Total-Octets") is None


@given(st.integers(min_value=1, max_value=2**64 - 1))
def test_chilli_limit_never_exceeds_the_cap_however_the_nas_reads_it(cap: int) -> None:
    octets, gigawords = chilli_total_limit(cap)
    assert 0 <= octets <= MAX_UINT32 and 0 <= gigawords <= MAX_UINT32
    assert octets <= cap  # a NAS that ignores gigawords
    assert (gigawords << 32) + octets <= cap  # a NAS that adds them
    assert (gigawords << 32) + octets > cap - 2**32


def test_values_out_of_range_are_refused_not_mangled() -> None:
    with pytest.raises(ValueError, match="32-bit"):
        accept_reply(grant("generic", interim_interval=2**32), "t")
    assert accept_reply(grant("generic", session_timeout=2**40), "t")[0] == ("Session-Timeout", str(MAX_UINT32))


def test_reply_message_is_cut_to_one_attribute() -> None:
    (item,) = reply_message("é" * 200)
    assert_items_are_str_tuples((item,))
    assert len(item[1].encode()) <= 253
