"""The monitoring shipped in channel_manager/deploy/: the Prometheus alert rules pass
`promtool check rules` and their unit tests (`promtool test rules`), every alert has a unit test
in which it fires, and every metric (and label) that the rules and the Grafana dashboard query is
one that /metrics exports, so that renaming a metric fails here instead of on an operator's
screen."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from notifications import delivery
from tests import payloads
from tests.factories import SubscriptionFactory, submit_order

DEPLOY = Path(__file__).resolve().parent.parent / "channel_manager" / "deploy"
RULES = DEPLOY / "prometheus-alerts.yml"
RULES_TEST = DEPLOY / "prometheus-alerts.test.yml"
DASHBOARD = DEPLOY / "grafana-dashboard.json"
# Series that Prometheus itself makes for every scrape target.
PROMETHEUS_SERIES = {"up": set()}
# Grafana's interval variables, replaced by a duration to check a dashboard query with promtool.
GRAFANA_INTERVALS = re.compile(r"\$__(rate_interval|interval|range)\b")


def promtool(*args: str, cwd: Path = DEPLOY) -> subprocess.CompletedProcess:
    executable = shutil.which("promtool")
    if executable is None:
        pytest.fail("promtool is missing: `make test` installs Debian's prometheus package")
    return subprocess.run([executable, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def dashboard_queries() -> list[str]:
    def panels(items):
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in panels(dashboard["panels"]) for target in panel.get("targets", [])]


# ---- PromQL: which series an expression selects ---------------------------------------------------

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?")
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


def selectors(expr: str) -> list[tuple[str, dict[str, str]]]:
    """(metric name, {label: matcher}) of each series selector in a PromQL expression: every
    identifier that is not a function, an aggregation, a keyword or a grouping label list."""
    text = GRAFANA_INTERVALS.sub("5m", expr)
    text = re.sub(r"\[[^\]]*\]", "", text)  # range durations
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    found = []
    position = 0
    while match := SELECTOR.search(text, position):
        position = match.end()
        name, labels = match.group(1), match.group(2) or ""
        preceding = text[: match.start()]
        if preceding.endswith(('"', "'")) or re.search(r"[0-9.]$", preceding):  # inside a string or a number
            continue
        if text[match.end():].lstrip().startswith("(") and not labels or name in KEYWORDS:
            continue
        found.append((name, {label: value for label, _, value in MATCHER.findall(labels)}))
    return found


def test_selectors_are_read_from_promql():
    expr = ('histogram_quantile(0.95, sum by (le, operation) (rate(cm_a_bucket{operation!~"x|y"}[$__rate_interval])))'
            ' / on (le) group_left sum(rate(cm_b_total[5m])) > 0.2 and min by (check) (cm_c) == 0')
    assert selectors(expr) == [("cm_a_bucket", {"operation": "x|y"}), ("cm_b_total", {}), ("cm_c", {})]


# ---- what /metrics exports --------------------------------------------------------------------


@pytest.fixture
def exported(client, catalog, partner, receiver, settings) -> dict[str, set[str]]:
    """{sample name: its label names} of a real scrape of /metrics after some activity: API
    requests, an order issued, a webhook delivered. A histogram or counter family counts with
    every sample name its type exposes, so a metric counts even where no sample was recorded."""
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    SubscriptionFactory(partner=partner, url=receiver.url())
    submit_order(partner, payloads.order_body())  # issued: the issuance histogram, an event to deliver
    assert delivery.deliver_due() == 1
    assert client.get("/channelManager").status_code == 200
    response = Client().get("/metrics")
    assert response.status_code == 200
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for suffix in suffixes.get(family.type, ("",)):
            names.setdefault(family.name + suffix, set())
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    for name in list(names):  # a histogram's _count and _sum carry its labels but for le
        if name.endswith(("_count", "_sum")) and (base := name.rsplit("_", 1)[0] + "_bucket") in names:
            names[name] |= names[base] - {"le"}
    return names


def assert_exported(expressions: list[str], exported: dict[str, set[str]], allowed: dict[str, set[str]]) -> None:
    known = {**exported, **allowed}
    missing = []
    for expr in expressions:
        for name, labels in selectors(expr):
            if name not in known:
                missing.append(f"{name} (in {expr})")
            elif unknown := set(labels) - known[name] - {"le", "job", "instance"}:
                missing.append(f"{name} has no label {sorted(unknown)} (in {expr})")
    assert missing == [], f"exported: {sorted(exported)}"


@pytest.mark.django_db
def test_every_metric_the_dashboard_queries_is_exported(exported):
    queries = dashboard_queries()
    assert len(queries) >= 10
    assert_exported(queries, exported, allowed={})
    # Every cm_ metric exported is on the dashboard.
    shown = {name.removesuffix("_bucket").removesuffix("_count").removesuffix("_total")
             for expr in queries for name, _ in selectors(expr)}
    families = {name.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum").removesuffix("_total")
                for name in exported if name.startswith("cm_") and not name.endswith("_created")}
    assert families - shown == set()


@pytest.mark.django_db
def test_every_metric_the_alert_rules_query_is_exported(exported):
    assert_exported([rule["expr"] for rule in alert_rules()], exported, allowed=PROMETHEUS_SERIES)


# ---- promtool ---------------------------------------------------------------------------------


def test_the_alert_rules_pass_promtool_check_rules():
    result = promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_the_alert_rules_pass_their_promtool_unit_tests():
    result = promtool("test", "rules", RULES_TEST.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_unit_test_in_which_it_fires():
    alerts = {rule["alert"] for rule in alert_rules()}
    required = {"queue age": "ChannelManagerQueueStalled", "issuance errors": "ChannelManagerIssuanceExceptions",
                "webhook failure rate": "ChannelManagerWebhookFailureRateHigh",
                "5xx rate": "ChannelManagerHTTP5xxRateHigh", "readiness": "ChannelManagerNotReady"}
    assert set(required.values()) <= alerts
    tests = yaml.safe_load(RULES_TEST.read_text())["tests"]
    fired = {case["alertname"] for group in tests for case in group["alert_rule_test"] if case.get("exp_alerts")}
    quiet = {case["alertname"] for group in tests for case in group["alert_rule_test"] if not case.get("exp_alerts")}
    assert alerts - fired == set(), "alerts without a test in which they fire"
    assert alerts - quiet == set(), "alerts without a test in which they stay quiet"


def test_every_dashboard_query_is_valid_promql(tmp_path):
    """promtool parses each query (as a recording rule, with Grafana's interval variables filled in)."""
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": GRAFANA_INTERVALS.sub("5m", expr)}
        for i, expr in enumerate(dashboard_queries())
    ]}]}
    (tmp_path / "dashboard-queries.yml").write_text(yaml.safe_dump(rules))
    result = promtool("check", "rules", "dashboard-queries.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_panels_have_unique_ids_and_use_the_datasource_variable():
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert [v["name"] for v in dashboard["templating"]["list"] if v["type"] == "datasource"] == ["datasource"]
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
