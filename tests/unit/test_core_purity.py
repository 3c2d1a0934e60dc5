"""The core stays pure: stdlib only, no clock, no I/O, no randomness of its own, no float in billing."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "rlm_hotspot" / "core"
MODULES = sorted(CORE.glob("*.py"))

ALLOWED_IMPORTS = {
    "__future__",
    "bisect",
    "collections",
    "collections.abc",
    "dataclasses",
    "datetime",
    "decimal",
    "enum",
    "ipaddress",
    "math",
    "re",
    "typing",
    "zoneinfo",
}
CLOCK_CALLS = {"now", "utcnow", "today", "time", "monotonic", "perf_counter"}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def test_core_modules_exist() -> None:
    names = {p.stem for p in MODULES}
    assert {"money", "tariff", "cardcode", "validity", "decisions", "networks"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_imports_are_stdlib_or_core(path: Path) -> None:
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            assert name in ALLOWED_IMPORTS or name.startswith("rlm_hotspot.core"), f"{path.name}: {name}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_float_no_true_division_no_clock(path: Path) -> None:
    for node in ast.walk(_tree(path)):
        assert not (isinstance(node, ast.Constant) and isinstance(node.value, float)), (
            f"{path.name}: float literal"
        )
        assert not isinstance(node, ast.Div), f"{path.name}: true division (/) has no place in billing"
        if isinstance(node, ast.Name) and node.id == "float":
            assert path.name == "cardcode.py", f"{path.name}: uses float"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            assert node.func.attr not in CLOCK_CALLS, f"{path.name}:{node.lineno}: reads a clock"
        if isinstance(node, ast.Attribute) and node.attr == "log2":
            assert path.name == "cardcode.py", "math.log2 is only for displaying PIN entropy"


def test_float_appears_only_in_pin_entropy() -> None:
    tree = _tree(CORE / "cardcode.py")
    for function in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
        uses_float = any(isinstance(n, ast.Name) and n.id == "float" for n in ast.walk(function))
        assert not uses_float or function.name == "pin_entropy_bits", function.name
