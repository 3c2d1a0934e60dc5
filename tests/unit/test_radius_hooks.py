"""The rlm_python3 entry points with a stub `radiusd` module: start-up aborts, and faults become FAIL."""

from __future__ import annotations

import importlib
import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from rlm_hotspot.core.decisions import SERVICE_UNAVAILABLE as UNAVAILABLE
from rlm_hotspot.db.engine import make_engine
from rlm_hotspot.pins import PinVault, create_key_file
from rlm_hotspot.radius.adapter import LOGIN_CALL, LOGIN_RESULT, REFUSAL, RadiusAdapter
from rlm_hotspot.settings import load_settings

RCODES = {"RLM_MODULE_REJECT": 0, "RLM_MODULE_FAIL": 1, "RLM_MODULE_OK": 2, "RLM_MODULE_NOOP": 7}
RCODES |= {"RLM_MODULE_UPDATED": 8, "L_INFO": 3, "L_ERR": 4, "L_WARN": 5}


class StubRadiusd(types.ModuleType):
    """What FreeRADIUS builds into its C module: constants, radlog and the config block."""

    def __init__(self, config: dict[str, str]) -> None:
        super().__init__("radiusd")
        for name, value in RCODES.items():
            setattr(self, name, value)
        self.config = config
        self.logged: list[tuple[int, str]] = []

    def radlog(self, level: int, message: str) -> None:
        self.logged.append((level, message))


@pytest.fixture
def load_hooks(monkeypatch: pytest.MonkeyPatch) -> Iterator:  # type: ignore[type-arg]
    def load(config: dict[str, str]) -> tuple[types.ModuleType, StubRadiusd]:
        stub = StubRadiusd(config)
        monkeypatch.setitem(sys.modules, "radiusd", stub)
        sys.modules.pop("rlm_hotspot.radius.hooks", None)
        return importlib.import_module("rlm_hotspot.radius.hooks"), stub

    yield load
    hooks = sys.modules.pop("rlm_hotspot.radius.hooks", None)
    if hooks is not None:
        hooks.detach(None)


def settings_file(tmp_path: Path, url: str) -> Path:
    create_key_file(tmp_path / "pin.keys")
    path = tmp_path / "hotspot.toml"
    path.write_text(f'[database]\nurl = "{url}"\nconnect_timeout_s = 1\n[pins]\nkey_file = "pin.keys"\n')
    return path


UNREACHABLE = "postgresql+psycopg2://postgres@/hotspot?host=/nonexistent"


@pytest.mark.parametrize(
    ("config", "complaint"),
    [
        ({}, "has no `settings = <file>`"),
        ({"settings": "/nonexistent/hotspot.toml"}, "settings file /nonexistent/hotspot.toml not found"),
        ({"settings": "x", "venv": "/nonexistent"}, "no Python venv at /nonexistent/lib/python3"),
    ],
)
def test_instantiate_aborts_start_up_with_a_clear_line(load_hooks, config: dict[str, str], complaint: str) -> None:  # type: ignore[no-untyped-def]
    hooks, stub = load_hooks(config)
    assert hooks.instantiate(None) == -1
    assert any(level == 4 and complaint in message for level, message in stub.logged), stub.logged


def test_an_unreachable_database_aborts_start_up(load_hooks, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    hooks, stub = load_hooks({"settings": str(settings_file(tmp_path, UNREACHABLE))})
    assert hooks.instantiate(None) == -1
    assert "cannot use the database" in stub.logged[-1][1]


def test_logins_make_no_query_and_database_faults_become_fail(load_hooks, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    hooks, stub = load_hooks({})
    settings = load_settings(settings_file(tmp_path, UNREACHABLE), environ={})
    engine = make_engine(settings, pool_size=1)  # connects lazily: every query fails at once
    hooks._adapter = RadiusAdapter(stub, settings, engine, PinVault.from_file(settings.pin_key_file))
    request = (("User-Name", "0001 9116-814"), ("User-Password", "x"), ("NAS-IP-Address", "192.0.2.1"))
    # the first call prepares radiusd's database call: no query of its own, so no fault either
    rcode, reply, control = hooks.authorize({"request": request, "config": None})
    assert (rcode, reply) == (8, None)
    [(name, op, call)] = control
    assert (name, op) == (LOGIN_CALL, ":=")
    assert json.loads(bytes.fromhex(call))["number"] == "00019116814"
    typo = (("User-Name", "00019116815"), *request[1:])
    rcode, reply, control = hooks.authorize({"request": typo, "config": None})
    assert (rcode, reply) == (0, (("Reply-Message", "card number '00019116815' has a typo (check digit)"),))
    [(name, op, record)] = control  # recorded by Post-Auth-Type REJECT
    assert (name, json.loads(bytes.fromhex(record))["outcome"]) == (REFUSAL, "bad_card_number")
    unavailable = (("Reply-Message", UNAVAILABLE),)
    assert hooks.authorize({"request": request, "config": ((LOGIN_RESULT, "{"),)}) == (1, unavailable, None)
    assert "authorize: internal error, answering FAIL" in stub.logged[-1][1]
    # the virtual server's database call failed (rlm_sql says why): one line, no traceback
    assert hooks.authorize({"request": request, "config": ((LOGIN_RESULT, ""),)}) == (1, unavailable, None)
    assert stub.logged[-1][1] == "rlm_hotspot: authorize: the login's database call failed, answering FAIL"
    start = {"request": (("Acct-Status-Type", "Start"), ("NAS-IP-Address", "192.0.2.1"), ("User-Name", "1"))}
    assert hooks.accounting(start) == (1, None, None)
    assert "accounting: database unavailable, answering FAIL" in stub.logged[-1][1]
    rcode, reply, control = hooks.authorize({"request": (("User-Name", "1"),)})
    assert (rcode, reply, control) == (0, (("Reply-Message", "Invalid login request."),), None)
    assert hooks.accounting({"request": (("Acct-Status-Type", "Bogus"),)}) == (2, None, None)  # acknowledged
    counted = hooks._adapter.metrics.registry.get_sample_value
    for kind in ("database_unavailable", "unexpected", "login_call_failed"):
        hook = "accounting" if kind == "database_unavailable" else "authorize"
        assert counted("hotspot_radius_errors_total", {"hook": hook, "kind": kind}) == 1, kind
    for reason in ("bad_card_number", "malformed_request"):
        assert counted("hotspot_radius_refusals_total", {"reason": reason}) == 1, reason
    assert counted("hotspot_radius_requests_total", {"hook": "authorize", "outcome": "fail"}) == 2
    assert counted("hotspot_radius_requests_total", {"hook": "accounting", "outcome": "ok"}) == 1
    assert counted("hotspot_radius_accounting_unbilled_total", {"reason": "malformed"}) == 1
    assert counted("hotspot_radius_hook_seconds_count", {"hook": "authorize"}) == 5
