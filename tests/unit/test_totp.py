"""TOTP codes as RFC 6238 defines them (its SHA-1 test vectors, last six digits) and as apps read them."""

from __future__ import annotations

import base64

import pytest

from rlm_hotspot.totp import STEP_SECONDS, code_at, matching_step, new_secret, provisioning_uri

RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()


@pytest.mark.parametrize(
    ("posix", "eight_digits"),
    [(59, "94287082"), (1111111109, "07081804"), (1111111111, "14050471"), (1234567890, "89005924"),
     (2000000000, "69279037"), (20000000000, "65353130")],
)  # fmt: skip
def test_rfc_6238_vectors(posix: int, eight_digits: str) -> None:
    assert code_at(RFC_SECRET, posix // STEP_SECONDS) == eight_digits[-6:]


def test_a_code_matches_its_step_and_one_either_side_only() -> None:
    secret = new_secret(bytes(range(20)))
    now = 1_800_000_000
    step = now // STEP_SECONDS
    assert matching_step(secret, code_at(secret, step), now) == step
    assert matching_step(secret, code_at(secret, step - 1), now) == step - 1
    assert matching_step(secret, code_at(secret, step + 1), now) == step + 1
    assert matching_step(secret, code_at(secret, step + 2), now) is None
    assert matching_step(secret, "12 34 5", now) is None
    assert matching_step(secret, "abcdef", now) is None


def test_secrets_and_links() -> None:
    secret = new_secret(b"\xff" * 20)
    assert secret == "7" * 32
    with pytest.raises(ValueError):
        new_secret(b"short")
    uri = provisioning_uri(secret, "anna", "Hotspot console")
    assert uri.startswith("otpauth://totp/Hotspot%20console%3Aanna?secret=" + secret)
