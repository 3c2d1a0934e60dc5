"""Rows as the layers above see them: frozen dataclasses named by the query, not SQLAlchemy `Row`s, so
that a service knows (and the type check proves) which columns it reads."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from sqlalchemy import Row

Record = TypeVar("Record")


def one(kind: Callable[..., Record], row: Row[Any] | None) -> Record | None:
    """The row as a `kind`, whose fields are the query's columns by name; None stays None."""
    return None if row is None else kind(**row._mapping)


def every(kind: Callable[..., Record], rows: Iterable[Row[Any]]) -> list[Record]:
    """Each row as a `kind` (see `one`)."""
    return [kind(**row._mapping) for row in rows]
