"""UAM encodings and redirect checks against vectors computed outside this code (md5sum, by hand)."""

from __future__ import annotations

import pytest

from portal.uam import (
    LoginOutcome,
    UamError,
    chilli_chap_response,
    chilli_key,
    chilli_pap_password,
    handoff,
    login_outcome,
    mikrotik_chap_password,
    mikrotik_octets,
    parse_chilli_redirect,
    parse_mikrotik_login,
)
from tests.uam_nas import chilli_pap_decode, sign_chilli_url

CHALLENGE = bytes.fromhex("00112233445566778899aabbccddeeff")
SECRET = "s3cret"
PIN = "ACDE4679KP"
STATUS = "http://portal.lan/status"  # where MikroTik sends the guest after the login
PORTAL = "http://portal.lan/uam/"
REDIRECT = (
    f"{PORTAL}?res=notyet&uamip=10.1.0.1&uamport=3990&challenge={CHALLENGE.hex()}&called=02-00-00-00-00-01"
    "&mac=02-00-00-77-00-02&ip=10.1.0.2&nasid=lobby&sessionid=5f3a0001&userurl=http%3A%2F%2Fexample.org%2F"
)


def test_chilli_key_is_md5_of_challenge_and_secret() -> None:
    # printf '\x00\x11...\xff' 's3cret' | md5sum
    assert chilli_key(CHALLENGE, SECRET).hex() == "143719d7c0af8cd93a47e9b366ba38dc"
    assert chilli_key(CHALLENGE, None) == CHALLENGE


def test_chilli_pap_is_a_byte_wise_xor_as_long_as_the_pin() -> None:
    # without a uamsecret the key is the challenge: 'A' ^ 0x00 = 41, 'C' ^ 0x11 = 52, 'D' ^ 0x22 = 66, ...
    assert chilli_pap_password(PIN, CHALLENGE) == "415266767063514ec3c9"
    encoded = chilli_pap_password(PIN, chilli_key(CHALLENGE, SECRET))
    assert encoded == "55745d92f499bbe07117" and len(encoded) == 2 * len(PIN)
    long_pin = "X" * 40  # longer than the key: the key is cycled
    assert chilli_pap_decode(chilli_pap_password(long_pin, CHALLENGE), CHALLENGE) == long_pin


def test_chilli_chap_response() -> None:
    assert chilli_chap_response(PIN, chilli_key(CHALLENGE, SECRET)) == "08fa58e4cf724bf523be43c20da026ba"


def test_redirect_signature_matches_md5sum() -> None:
    # echo -n 'http://10.1.0.1:3990/?res=notyet&uamip=10.1.0.1s3cret' | md5sum
    assert sign_chilli_url("http://10.1.0.1:3990/?res=notyet&uamip=10.1.0.1", SECRET).endswith(
        "&md=4AAE84CDB1093BCE7A3E53087A2D2DE0"
    )


def test_a_signed_redirect_is_read() -> None:
    ctx = parse_chilli_redirect(sign_chilli_url(REDIRECT, SECRET), SECRET)
    assert ctx.login_url == "http://10.1.0.1:3990/logon"
    assert (ctx.client_ip, ctx.client_mac, ctx.nas_id, ctx.session_id) == (
        "10.1.0.2",
        "02-00-00-77-00-02",
        "lobby",
        "5f3a0001",
    )
    assert ctx.original_url == "http://example.org/" and ctx.result == "notyet"
    assert ctx.key == chilli_key(CHALLENGE, SECRET)


@pytest.mark.parametrize(
    "url",
    [
        REDIRECT,  # unsigned
        sign_chilli_url(REDIRECT, "another secret"),
        sign_chilli_url(REDIRECT, SECRET).replace("uamip=10.1.0.1", "uamip=203.0.113.9"),  # redirected elsewhere
        sign_chilli_url(REDIRECT, SECRET) + "&uamip=203.0.113.9",  # something appended after md
    ],
)
def test_a_forged_redirect_is_refused(url: str) -> None:
    with pytest.raises(UamError):
        parse_chilli_redirect(url, SECRET)


def test_chilli_handoff_urls() -> None:
    ctx = parse_chilli_redirect(sign_chilli_url(REDIRECT, SECRET), SECRET)
    chap = handoff(ctx, "00031234567895", PIN, status_url=STATUS)
    assert chap.method == "GET"
    assert chap.url == (
        "http://10.1.0.1:3990/logon?username=00031234567895&response=08fa58e4cf724bf523be43c20da026ba"
        "&userurl=http%3A%2F%2Fexample.org%2F"
    )
    pap = handoff(ctx, "00031234567895", PIN, status_url=STATUS, chap=False)
    assert "password=55745d92f499bbe07117" in pap.url and PIN not in pap.url


def test_chilli_results() -> None:
    success = REDIRECT.replace("res=notyet", "res=success") + "&uid=00031234567895&timeleft=3000&reply=Welcome"
    ctx = parse_chilli_redirect(sign_chilli_url(success, SECRET), SECRET)
    assert (ctx.result, ctx.time_left) == ("success", 3000)
    assert login_outcome(ctx).accepted and login_outcome(ctx).message == "Welcome"
    failed = REDIRECT.replace("res=notyet", "res=failed") + "&reason=reject"
    assert login_outcome(parse_chilli_redirect(sign_chilli_url(failed, SECRET), SECRET)) == LoginOutcome(False)
    rejected = parse_chilli_redirect(sign_chilli_url(failed + "&reply=Wrong+PIN.", SECRET), SECRET)
    assert login_outcome(rejected) == LoginOutcome(False, "Wrong PIN.")  # RADIUS's Reply-Message, not reason=


MIKROTIK = {
    "link-login-only": "http://10.5.50.1/login",
    "link-orig": "http://example.org/",
    "chap-id": "\\001",
    "chap-challenge": "\\001\\043\\105\\147\\211\\253\\315\\357\\001\\043\\105\\147\\211\\253\\315\\357",
    "mac": "02:00:00:77:00:02",
    "ip": "10.5.50.2",
}


def test_mikrotik_octal_strings() -> None:
    assert mikrotik_octets("\\123\\045") == b"S%"
    with pytest.raises(UamError):
        mikrotik_octets("\\12x")


def test_mikrotik_chap_password_matches_md5sum() -> None:
    # printf '\001ACDE4679KP\001\043\105...\357' | md5sum
    ctx = parse_mikrotik_login(MIKROTIK, "http://10.5.50.1/login")
    expected = "22e09d133d3ba1d8183c6e8e63c2437f"
    assert mikrotik_chap_password(PIN, ctx.chap_id or b"", ctx.challenge) == expected
    form = handoff(ctx, "00031234567895", PIN, status_url=STATUS)
    assert (form.method, form.url) == ("POST", "http://10.5.50.1/login")
    assert dict(form.fields) == {"username": "00031234567895", "password": expected, "dst": STATUS}


def test_mikrotik_login_link_must_be_the_nas() -> None:
    with pytest.raises(UamError):
        parse_mikrotik_login({**MIKROTIK, "link-login-only": "http://203.0.113.9/login"}, "http://10.5.50.1/login")
    with pytest.raises(UamError):
        parse_mikrotik_login({**MIKROTIK, "chap-id": ""}, "http://10.5.50.1/login")
    with pytest.raises(UamError, match="chap-id is 2 octets"):
        parse_mikrotik_login({**MIKROTIK, "chap-id": "\\001\\002"}, "http://10.5.50.1/login")
    failed = parse_mikrotik_login({**MIKROTIK, "error": "invalid password"}, "http://10.5.50.1/login")
    assert not login_outcome(failed).accepted and login_outcome(failed).message == "invalid password"
