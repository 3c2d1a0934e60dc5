"""Both web apps' Russian catalogues: complete, and compiled as committed (docs/portal.md says how)."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po


@pytest.mark.parametrize("app", ["portal", "console"])
def test_translations_are_compiled(app: str) -> None:
    """The committed .mo must match its .po (run `pybabel compile -d <app>/translations` after editing)."""
    folder = Path(__file__).parents[2] / app / "translations" / "ru" / "LC_MESSAGES"
    with open(folder / "messages.po", "rb") as po, open(folder / "messages.mo", "rb") as mo:
        source, compiled = read_po(po), read_mo(mo)
    assert {m.id: m.string for m in source if m.id} == {m.id: m.string for m in compiled if m.id}
    assert all(m.string for m in source if m.id), "every message has a Russian translation"
    assert not [m.id for m in source if m.id and m.fuzzy], "no fuzzy (guessed) translation is left"
