"""The one line every entry point logs or shows for a database error."""

from sqlalchemy.exc import OperationalError

from rlm_hotspot.db.engine import database_error_line


def test_the_drivers_first_line_without_the_sql_that_follows() -> None:
    exc = OperationalError("SELECT 1", {}, Exception("connection refused\n\tIs the server running?\n"))
    assert database_error_line(exc) == "connection refused"


def test_an_error_without_a_driver_error_gives_its_own_text() -> None:
    assert database_error_line(RuntimeError("  pool exhausted\nmore")) == "pool exhausted"


def test_an_error_without_text_gives_its_type() -> None:
    assert database_error_line(TimeoutError()) == "TimeoutError"
