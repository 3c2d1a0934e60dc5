"""The alert rules and the Grafana dashboard under deploy/ name only metrics the code exports: a renamed
metric would otherwise leave an alert that can never fire and a panel that stays empty."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from flowimport.metrics import Metrics as FlowMetrics
from portal.metrics import PortalMetrics
from rlm_hotspot.metrics import WorkerMetrics
from rlm_hotspot.radius.import_metrics import ImportMetrics
from rlm_hotspot.radius.metrics import RadiusMetrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


def exported() -> set[str]:
    registries: list[CollectorRegistry] = [
        WorkerMetrics().registry, PortalMetrics().registry, FlowMetrics("cafe").registry,
        RadiusMetrics(Path("/nonexistent/buffer.detail")).registry,
        ImportMetrics(Path("/nonexistent/buffer.detail")).registry,
    ]  # fmt: skip
    names = set()
    for registry in registries:
        for family in registry.collect():
            names.add(family.name)
            names.update(sample.name for sample in family.samples)
    return names


def named_metrics(expressions: list[str]) -> set[str]:
    found = set()
    for expr in expressions:
        found.update(re.findall(r"\bhotspot_[a-z_]+", expr))
    return found


def base(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def check(expressions: list[str]) -> None:
    assert expressions
    known = exported()
    unknown = {name for name in named_metrics(expressions) if name not in known and base(name) not in known}
    assert not unknown, f"not exported by any process: {sorted(unknown)}"


def test_every_alert_names_exported_metrics() -> None:
    text = (DEPLOY / "prometheus" / "rlm-hotspot-alerts.yml").read_text()
    # `expr: ...` on one line, or `expr: |` followed by indented lines
    expressions = re.findall(r"expr: \|\n((?:\s{10,}.*\n)+)|expr: (.+)", text)
    check([block or line for block, line in expressions])
    assert len(re.findall(r"- alert: ", text)) == len(expressions)


def test_every_dashboard_panel_names_exported_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "rlm-hotspot-dashboard.json").read_text())
    check([target["expr"] for panel in dashboard["panels"] for target in panel["targets"]])
