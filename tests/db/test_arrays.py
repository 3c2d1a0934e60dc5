"""Array parameters sent as one literal arrive in PostgreSQL exactly as the Python values were."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, text

from rlm_hotspot.db.arrays import array_literal


def _round_trip(engine: Engine, values: list[object], sql_type: str) -> list[object]:
    with engine.connect() as conn:
        return list(
            conn.execute(text(f"SELECT unnest(CAST(:a AS {sql_type}[]))"), {"a": array_literal(values)}).scalars()
        )


def test_text_arrives_exactly_whatever_it_holds(engine: Engine) -> None:
    awkward = ["a,b", "{x}", 'say "hi"', "back\\slash", "NULL", "", " padded ", "tab\there", "кириллица", None]
    assert _round_trip(engine, awkward, "text") == awkward


def test_numbers_timestamps_and_booleans_arrive_exactly(engine: Engine) -> None:
    big = [0, -1, 2**63 - 1, -(2**63), None]
    assert _round_trip(engine, big, "bigint") == big
    moments = [
        datetime(2026, 11, 26, 9, 0, 0, 123456, tzinfo=UTC),
        datetime(2026, 1, 1, 3, tzinfo=timezone(timedelta(hours=3))),
    ]
    assert _round_trip(engine, moments, "timestamptz") == moments
    assert _round_trip(engine, [True, False, None], "boolean") == [True, False, None]
    assert _round_trip(engine, [], "bigint") == []


def test_a_naive_timestamp_is_refused_rather_than_read_in_the_servers_zone() -> None:
    with pytest.raises(ValueError, match="naive timestamp"):
        array_literal([datetime(2026, 11, 26, 9, 0)])
