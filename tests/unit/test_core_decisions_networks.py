"""Refusal reasons and free networks."""

from __future__ import annotations

import ipaddress

import pytest

from rlm_hotspot.core.decisions import Refusal
from rlm_hotspot.core.networks import parse_networks


def test_every_refusal_has_a_lower_case_value_and_a_guest_sentence() -> None:
    assert len(Refusal) == 12
    for refusal in Refusal:
        assert refusal.value == refusal.name.lower()
        assert isinstance(refusal, str)
        message = refusal.message
        assert message[0].isupper() and message.endswith(".")
        assert len(message) < 80
    assert Refusal.WRONG_PIN.message == "Wrong PIN."
    assert Refusal.EXHAUSTED.message == "This card has no money left."
    assert Refusal("locked_out") is Refusal.LOCKED_OUT
    assert f"{Refusal.EXPIRED}" == "expired"


def test_parse_networks() -> None:
    networks = parse_networks(["10.0.0.0/8", " 192.0.2.7 ", "2001:db8::/32", ""])
    assert networks == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.0.2.7/32"),
        ipaddress.ip_network("2001:db8::/32"),
    )
    assert parse_networks([]) == ()


@pytest.mark.parametrize("bad", ["10.0.0.1/8", "10.0.0.0/33", "example.com", "300.1.1.1", "2001:db8::/129"])
def test_parse_networks_names_the_bad_entry(bad: str) -> None:
    with pytest.raises(ValueError, match=f"bad network '{bad}'"):
        parse_networks(["10.0.0.0/8", bad])

