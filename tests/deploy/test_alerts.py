"""The Prometheus rules and the Grafana dashboard parse (PromQL by promql-parser, the Prometheus grammar), and
every metric they name is one platform/metrics.py defines, under the name a scrape shows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import promql_parser
import pytest
import yaml
from prometheus_client import REGISTRY

import backoffice.platform.metrics  # noqa: F401  (defines every metric in the default registry)

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yaml"
DASHBOARD = DEPLOY / "grafana" / "dashboard.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
DURATION = re.compile(r"^(\d+[smhdwy])+$")


def exposed_names() -> set[str]:
    """The sample names a scrape of the platform can show, for every backoffice metric."""
    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("backoffice_"):
            names |= {family.name + suffix for suffix in SUFFIXES[family.type]}
    return names


def metric_names(expr: str) -> set[str]:
    """Every metric an expression selects, found by walking its syntax tree."""
    found: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            name = node.name or next((m.value for m in node.matchers.matchers if m.name == "__name__"), None)
            assert name, f"a selector without a metric name in {expr!r}"
            found.add(name)
            return
        if isinstance(node, promql_parser.MatrixSelector):
            walk(node.vector_selector)
        elif isinstance(node, promql_parser.BinaryExpr):
            walk(node.lhs), walk(node.rhs)
        elif isinstance(node, promql_parser.Call):
            for arg in node.args:
                walk(arg)
        elif isinstance(node, (promql_parser.AggregateExpr, promql_parser.ParenExpr, promql_parser.UnaryExpr,
                               promql_parser.SubqueryExpr)):
            walk(node.expr)
            if getattr(node, "param", None) is not None:
                walk(node.param)

    walk(promql_parser.parse(expr))
    return found


def rules() -> list[dict]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    document = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in document["panels"] for target in panel.get("targets", [])]


def test_the_walker_finds_every_selector_and_refuses_garbage():
    assert metric_names('sum by (k) (rate(a_total{x="1"}[5m])) / sum(rate(b_count[5m])) > 0 or absent(c)') == \
        {"a_total", "b_count", "c"}
    with pytest.raises(Exception):
        promql_parser.parse("sum by (kind (rate(x[5m]))")


def test_every_rule_parses_and_names_metrics_that_exist():
    known = exposed_names()
    assert "backoffice_outbox_oldest_age_seconds" in known and "backoffice_job_seconds_count" in known
    every = rules()
    assert {rule["alert"] for rule in every} >= {
        "BackofficeOutboxBacklogOld", "BackofficeDeadLettersGrowing", "BackofficeConnectorFailing",
        "BackofficeCircuitsOpening", "BackofficeNoSchedulerLeader", "BackofficeIntakeErrors"}
    for rule in every:
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        assert names <= known, f"{rule['alert']} names metrics no process exports: {names - known}"
        assert DURATION.match(rule.get("for", "0m")), rule["alert"]
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
    assert len({rule["alert"] for rule in every}) == len(every)


def test_the_dashboard_shows_what_the_alerts_watch():
    known = exposed_names()
    shown: set[str] = set()
    for expr in dashboard_exprs():
        names = metric_names(expr)
        assert names <= known, f"the dashboard names metrics no process exports: {names - known}"
        shown |= names
    watched = set().union(*(metric_names(rule["expr"]) for rule in rules()))
    assert watched <= shown, f"alerted on but not on the dashboard: {watched - shown}"


def test_the_prometheus_configuration_loads_the_rules_and_scrapes_every_process():
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yaml"] and (RULES.parent / "alerts.yaml").exists()
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"backoffice-web", "backoffice-worker", "backoffice-scheduler"}
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for name, job in jobs.items():
        [target] = job["dns_sd_configs"]
        [service] = target["names"]
        assert service in compose["services"], name
