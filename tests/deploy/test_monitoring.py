"""The chart's optional Grafana dashboard and PrometheusRule alerts.

Every query they hold is parsed with a PromQL parser, and every metric, label and label value it
names must be one the real jwt-authz exports: the binary is run (`demo` as the OpenID Provider,
`serve` as the subject), driven through allow, deny, unknown-kid, refresh-failure and
rejected-reload paths so that the families that only appear after traffic exist, and scraped.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field

import helm_python as helm
import promql_parser as promql
import pytest
import yaml
from kubernetes_validate import utils as kube

from conftest import KUBE_VERSIONS, RELEASE, NAMESPACE, render_chart, render_sidecar_example
from render import CHART
from test_binary import jwt_authz  # noqa: F401  (the fixture: the built binary)

DASHBOARD = CHART / "dashboards" / "jwt-authz.json"

# Series the alerts read that jwt-authz does not export, and who does.
EXTERNAL_METRICS = {
    "up": "Prometheus itself, per scrape target",
    "kube_pod_status_ready": "kube-state-metrics",
}
# Labels Prometheus adds to every scraped series (ServiceMonitor/PodMonitor relabelling), plus
# kube-state-metrics' own; a query may match or group on them whatever the family.
TARGET_LABELS = {"namespace", "job", "pod", "instance", "service", "container", "endpoint", "condition"}
# Labels whose values are configuration (issuer identifiers) or the build, not a fixed enum.
FREE_VALUED_LABELS = {"issuer", "version", "le"}
# What Grafana substitutes in a query before Prometheus sees it.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$namespace": ".*", "$job": ".*", "$issuer": ".*"}

MONITORING_ON = {"grafanaDashboard": {"enabled": True}, "prometheusRule": {"enabled": True}}
ALERTS = [
    "JwtAuthzKeysStale",
    "JwtAuthzRefreshFailing",
    "JwtAuthzDenyRateSpike",
    "JwtAuthzNotReady",
    "JwtAuthzConfigReloadRejected",
]


# === jwt-authz's own /metrics, after traffic ===


@dataclass
class Exposition:
    """A parsed Prometheus text exposition: family types, and each family's labels and values."""

    types: dict[str, str] = field(default_factory=dict)
    labels: dict[str, set[str]] = field(default_factory=dict)
    values: dict[tuple[str, str], set[str]] = field(default_factory=dict)

    def family(self, name: str) -> str | None:
        """The family a sample or selector name belongs to (histogram suffixes stripped)."""
        if name in self.types:
            return name
        for suffix in ("_bucket", "_sum", "_count"):
            base = name.removesuffix(suffix)
            if base != name and self.types.get(base) in ("histogram", "summary"):
                return base
        return None


SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_exposition(text: str) -> Exposition:
    exp = Exposition()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            exp.types[name] = kind
            exp.labels.setdefault(name, set())
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, f"unparsable sample line: {line!r}"
        family = exp.family(match.group(1))
        assert family, f"sample {match.group(1)} has no # TYPE"
        for label, value in LABEL.findall(match.group(2) or ""):
            exp.labels[family].add(label)
            exp.values.setdefault((family, label), set()).add(value)
    return exp


def b64url_json(segment: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def with_kid(token: str, kid: str) -> str:
    """The token with another `kid` in its header (so its signature no longer matters)."""
    header, payload, signature = token.split(".")
    h = b64url_json(header) | {"kid": kid}
    encoded = base64.urlsafe_b64encode(json.dumps(h, separators=(",", ":")).encode()).rstrip(b"=").decode()
    return f"{encoded}.{payload}.{signature}"


class Process:
    """A jwt-authz child process whose output is collected line by line in the background."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None):
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_for(self, pattern: str, timeout: float = 20) -> re.Match:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        for line in self.seen:
            if m := regex.search(line):
                return m
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                assert self.proc.poll() is None, f"exited {self.proc.returncode}:\n{''.join(self.seen)}"
                continue
            self.seen.append(line)
            if m := regex.search(line):
                return m
        pytest.fail(f"no line matching {pattern!r} within {timeout}s:\n{''.join(self.seen)}", pytrace=False)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def call(binary: str, grpc: str, token: str | None) -> int:
    args = [binary, "call", "--addr", f"http://{grpc}"]
    if token is not None:
        args += ["--token", token]
    return subprocess.run(args, capture_output=True, text=True, timeout=30).returncode


def scrape(admin: str) -> str:
    with urllib.request.urlopen(f"http://{admin}/metrics", timeout=5) as resp:
        return resp.read().decode()


def scrape_until(admin: str, needle: str, timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = scrape(admin)
        if needle in text or time.monotonic() > deadline:
            return text
        time.sleep(0.1)


@pytest.fixture(scope="module")
def metrics(jwt_authz, tmp_path_factory) -> Exposition:  # noqa: F811
    """/metrics of a `serve` that has seen every kind of event the dashboard and alerts watch."""
    tmp = tmp_path_factory.mktemp("monitoring")
    demo = Process([jwt_authz, "demo", "--grpc-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
                    "--issuer-listen", "127.0.0.1:0"])
    serve = None
    try:
        dev_issuer = demo.wait_for(r"development issuer\s+(http://127\.0\.0\.1:\d+)").group(1)
        token = demo.wait_for(r"^(eyJ[\w-]+\.[\w-]+\.[\w-]+)$").group(1)
        config = {
            "listen": {"grpc": "127.0.0.1:0", "admin": "127.0.0.1:0"},
            "issuers": [
                # The demo's issuer, through discovery: allows, denials, unknown-kid refetches.
                {"issuer": dev_issuer, "audiences": ["https://api.example.test"]},
                # A provider that is down: failed refreshes (outcome="connect").
                {"issuer": "http://127.0.0.1:1/down", "audiences": ["x"], "jwks_uri": "http://127.0.0.1:1/down/jwks"},
                # A static key set with an unusable entry: skipped keys, an age that never resets.
                {"issuer": "https://static.example", "audiences": ["x"], "algorithms": ["ES256"], "jwks_inline": {"keys": [
                    {"kty": "EC", "crv": "P-256", "use": "sig", "kid": "rfc7517-a1", "alg": "ES256",
                     "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
                     "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"},
                    {"kty": "oct", "kid": "symmetric", "k": "c2VjcmV0"},
                ]}},
            ],
        }
        path = tmp / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        serve = Process([jwt_authz, "serve", "--config", str(path)],
                        env={"JWT_AUTHZ_LOG": "info", "JWT_AUTHZ_LOG_FORMAT": "json"})
        listening = serve.wait_for(r'"message":"listening"')
        fields = json.loads(listening.string)
        grpc, admin = fields["grpc"], fields["admin"]
        scrape_until(admin, f'jwt_authz_jwks_refreshes_total{{issuer="{dev_issuer}",outcome="ok"}} 1')

        assert call(jwt_authz, grpc, token) == 0  # allow
        assert call(jwt_authz, grpc, token) == 0  # allow, from the verified-token cache
        assert call(jwt_authz, grpc, None) == 1  # missing_token
        assert call(jwt_authz, grpc, "not.a.jwt") == 1  # malformed
        assert call(jwt_authz, grpc, with_kid(token, "rotated-1")) == 1  # unknown_kid, refetch performed
        assert call(jwt_authz, grpc, with_kid(token, "rotated-2")) == 1  # unknown_kid, refetch rate-limited
        assert call(jwt_authz, grpc, token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")) == 1

        # A reload of an invalid file is rejected and counted.
        path.write_text(yaml.safe_dump(config | {"zz_not_a_key": 1}))
        serve.proc.send_signal(signal.SIGHUP)
        text = scrape_until(admin, 'jwt_authz_config_reloads_total{outcome="rejected"}')
        return parse_exposition(text)
    finally:
        demo.stop()
        if serve:
            serve.stop()


def test_scripted_traffic_produced_every_event_the_monitoring_reads(metrics):
    """Guards the fixture itself: without these series the name checks below would prove little."""
    assert {"allow", "deny"} <= metrics.values[("jwt_authz_checks_total", "decision")]
    assert {"ok", "connect"} <= metrics.values[("jwt_authz_jwks_refreshes_total", "outcome")]
    assert {"ok", "rejected"} <= metrics.values[("jwt_authz_config_reloads_total", "outcome")]
    assert metrics.values[("jwt_authz_jwks_skipped_keys_total", "reason")]
    assert metrics.types["jwt_authz_check_duration_seconds"] == "histogram"


# === PromQL analysis ===


@dataclass
class Query:
    where: str
    expr: str


@dataclass
class Uses:
    """What one query reads: selectors (metric name and matchers) and grouping labels."""

    selectors: list[tuple[str, list[tuple[str, object, str]]]] = field(default_factory=list)
    grouping: set[str] = field(default_factory=set)


def analyse(expr: str) -> Uses:
    ast = promql.parse(expr)  # raises on a syntax error
    uses = Uses()

    def visit(node):
        if isinstance(node, promql.VectorSelector):
            matchers = [(m.name, m.op, m.value) for m in node.matchers.matchers]
            name = node.name or next((v for n, _, v in matchers if n == "__name__"), None)
            assert name, f"a selector without a metric name in {expr!r}"
            uses.selectors.append((name, matchers))
        elif isinstance(node, promql.AggregateExpr) and node.modifier:
            uses.grouping.update(node.modifier.labels)
        elif isinstance(node, promql.BinaryExpr) and node.modifier and node.modifier.matching:
            uses.grouping.update(node.modifier.matching.labels)

    promql.walk(ast, visit)
    return uses


def problems_with(query: Query, metrics: Exposition, external: set[str]) -> list[str]:
    """Every metric, label and enum value the query names that jwt-authz does not export."""
    try:
        uses = analyse(query.expr)
    except ValueError as e:
        return [f"{query.where}: does not parse ({e}): {query.expr}"]
    problems = []
    families = set()
    for name, matchers in uses.selectors:
        if name in external:
            continue
        family = metrics.family(name)
        if family is None:
            problems.append(f"{query.where}: {name} is not in jwt-authz's /metrics")
            continue
        families.add(family)
        for label, op, value in matchers:
            if label in TARGET_LABELS or label == "__name__":
                continue
            if label not in metrics.labels[family]:
                problems.append(f"{query.where}: {family} has no label {label!r}")
                continue
            if label in FREE_VALUED_LABELS or "$" in value:
                continue
            wanted = value.split("|") if op in (promql.MatchOp.Re, promql.MatchOp.NotRe) else [value]
            unknown = set(wanted) - metrics.values.get((family, label), set())
            if unknown:
                problems.append(f"{query.where}: {family}{{{label}}} never takes the value(s) {sorted(unknown)}")
    known_labels = set().union(*(metrics.labels[f] for f in families)) if families else set()
    for label in uses.grouping - known_labels - TARGET_LABELS:
        problems.append(f"{query.where}: groups by {label!r}, which none of {sorted(families)} has")
    return problems


def families_read(queries: list[Query], metrics: Exposition) -> set[str]:
    return {metrics.family(name) for q in queries for name, _ in analyse(q.expr).selectors} - {None}


# === the dashboard ===


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def grafana_to_promql(expr: str) -> str:
    for var, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(var, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr!r}"
    return expr


def dashboard_queries(dashboard: dict) -> list[Query]:
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            queries.append(Query(f"panel {panel['title']!r} {target['refId']}", grafana_to_promql(target["expr"])))
    for var in dashboard["templating"]["list"]:
        if var["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", var["query"]["query"])
        assert match, f"variable {var['name']}: expected label_values(selector, label)"
        selector, label = match.groups()
        # label_values(s, l) lists the values of l on s: the same as grouping s by l.
        queries.append(Query(f"variable {var['name']!r}", f"count by ({label}) ({grafana_to_promql(selector)})"))
    return queries


def test_dashboard_json_is_a_grafana_dashboard(dashboard):
    assert dashboard["uid"] == "jwt-authz" and dashboard["title"] == "jwt-authz"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "namespace", "job", "issuer"} <= variables
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        assert panel.get("description"), f"{panel['title']}: say what the panel means"


def test_dashboard_has_the_panels_operators_need(dashboard):
    exprs = {p["title"]: " ".join(t["expr"] for t in p.get("targets", [])) for p in dashboard["panels"]}
    assert "by (decision)" in exprs["Decisions"]
    assert "by (reason)" in exprs["Deny reasons"]
    assert "by (frontend, decision)" in exprs["Checks by front end"]
    for q in ("0.5", "0.9", "0.99"):
        assert f"histogram_quantile({q}, sum by (le) (rate(jwt_authz_check_duration_seconds_bucket" in (
            exprs["Check latency quantiles"]
        )
    assert "by (issuer) (jwt_authz_jwks_age_seconds" in exprs["Key-set age per issuer"]
    assert 'outcome!="ok"' in exprs["Refresh failures"]
    assert "jwt_authz_token_cache_lookups_total" in exprs["Verified-token cache hit ratio"]
    assert "by (issuer, result) (increase(jwt_authz_jwks_unknown_kid_refetches_total" in exprs["Unknown-kid refetches"]
    assert "jwt_authz_config_reloads_total" in exprs["Config reloads"]


def test_every_metric_the_dashboard_queries_is_exported(dashboard, metrics):
    problems = [p for q in dashboard_queries(dashboard) for p in problems_with(q, metrics, external=set())]
    assert not problems, "\n".join(problems)


def test_dashboard_shows_every_family_jwt_authz_exports(dashboard, metrics):
    missing = set(metrics.types) - families_read(dashboard_queries(dashboard), metrics)
    assert not missing, f"add panels for {sorted(missing)} to {DASHBOARD.relative_to(CHART.parent.parent)}"


def test_dashboard_configmap_holds_the_dashboard_for_grafanas_sidecar():
    objs = render_chart({"grafanaDashboard": {
        "enabled": True, "namespace": "monitoring", "labels": {"team": "platform"},
        "annotations": {"grafana_folder": "Security"},
    }})
    [cm] = [o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == f"{RELEASE}-dashboard"]
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["labels"]["team"] == "platform"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Security"}
    assert json.loads(cm["data"]["jwt-authz.json"]) == json.loads(DASHBOARD.read_text())
    for version in KUBE_VERSIONS:
        kube.validate(cm, version, strict=True)


def test_grafana_sidecar_label_value_can_be_overridden():
    objs = render_chart({"grafanaDashboard": {"enabled": True, "labels": {"grafana_dashboard": "jwt-authz"}}})
    [cm] = [o for o in objs if o["metadata"]["name"] == f"{RELEASE}-dashboard"]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "jwt-authz"
    assert "namespace" not in cm["metadata"]


# === the alerts ===


def rule_object(values: dict | None = None, sidecar: bool = False) -> dict:
    values = {"prometheusRule": {"enabled": True}} | (values or {})
    if sidecar:
        objs = render_sidecar_example({"jwt-authz": {"mode": "sidecar", **values}})
    else:
        objs = render_chart(values)
    [rule] = [o for o in objs if o["kind"] == "PrometheusRule"]
    return rule


def alerts(rule: dict) -> dict[str, dict]:
    [group] = rule["spec"]["groups"]
    return {r["alert"]: r for r in group["rules"]}


def test_monitoring_objects_are_off_by_default(default_objects, all_on_objects, sidecar_objects):
    for objs in (default_objects, all_on_objects, sidecar_objects):
        assert not [o for o in objs if o["kind"] == "PrometheusRule"]
        assert not [o for o in objs if o["kind"] == "ConfigMap" and "grafana_dashboard" in o["metadata"]["labels"]]


def test_prometheus_rule_has_the_five_alerts_with_runbooks():
    rule = rule_object({"prometheusRule": {
        "enabled": True, "labels": {"release": "kube-prometheus-stack"}, "alertLabels": {"team": "platform"},
        "runbookUrl": "https://docs.example.com/jwt-authz",
    }})
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["name"] == RELEASE
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    by_name = alerts(rule)
    assert list(by_name) == ALERTS
    for name, r in by_name.items():
        assert set(r) <= {"alert", "expr", "for", "labels", "annotations"}, name
        assert r["labels"]["team"] == "platform", name
        assert r["labels"]["severity"] in ("warning", "critical"), name
        assert set(r["annotations"]) == {"summary", "description", "runbook", "runbook_url"}, name
        assert r["annotations"]["runbook_url"] == f"https://docs.example.com/jwt-authz#{name.lower()}"
        assert "\n" not in r["annotations"]["summary"], name
    assert by_name["JwtAuthzNotReady"]["labels"]["severity"] == "critical"
    assert "for" not in by_name["JwtAuthzConfigReloadRejected"]


def test_default_thresholds():
    by_name = alerts(rule_object())
    stale = by_name["JwtAuthzKeysStale"]
    assert stale["expr"].rstrip().endswith("> 3600") and stale["for"] == "5m"
    failing = by_name["JwtAuthzRefreshFailing"]["expr"]
    assert failing.count("[10m]") == 2 and by_name["JwtAuthzRefreshFailing"]["for"] == "5m"
    spike = by_name["JwtAuthzDenyRateSpike"]["expr"]
    assert "> 0.25" in spike and "> 0.1" in spike and 'reason!~"missing_token"' in spike and "[10m]" in spike
    assert by_name["JwtAuthzNotReady"]["for"] == "10m"
    assert "[15m]" in by_name["JwtAuthzConfigReloadRejected"]["expr"]
    for r in by_name.values():
        assert f'namespace="{NAMESPACE}",job="{RELEASE}"' in r["expr"], r["alert"]


def test_thresholds_come_from_values():
    by_name = alerts(rule_object({"prometheusRule": {
        "enabled": True,
        "keysStale": {"threshold": "90m", "for": "1m", "severity": "critical"},
        "refreshFailing": {"window": "30m"},
        "denyRateSpike": {"threshold": 0.5, "window": "5m", "minDenyRate": 2, "excludeReasons": ["missing_token", "expired"]},
        "notReady": {"for": "2m"},
        "configReloadRejected": {"window": "1h"},
    }}))
    assert by_name["JwtAuthzKeysStale"]["expr"].rstrip().endswith("> 5400")
    assert (by_name["JwtAuthzKeysStale"]["for"], by_name["JwtAuthzKeysStale"]["labels"]["severity"]) == ("1m", "critical")
    assert by_name["JwtAuthzRefreshFailing"]["expr"].count("[30m]") == 2
    spike = by_name["JwtAuthzDenyRateSpike"]["expr"]
    assert "> 0.5" in spike and "> 2" in spike and 'reason!~"missing_token|expired"' in spike and "[5m]" in spike
    assert by_name["JwtAuthzNotReady"]["for"] == "2m"
    assert "offset 1h" in by_name["JwtAuthzConfigReloadRejected"]["expr"]


def test_deny_spike_counts_every_reason_when_none_is_excluded():
    spike = alerts(rule_object({"prometheusRule": {"enabled": True, "denyRateSpike": {"excludeReasons": []}}}))
    assert "reason" not in spike["JwtAuthzDenyRateSpike"]["expr"]


def test_each_alert_can_be_turned_off():
    for name, key in zip(ALERTS, ["keysStale", "refreshFailing", "denyRateSpike", "notReady", "configReloadRejected"]):
        left = alerts(rule_object({"prometheusRule": {"enabled": True, key: {"enabled": False}}}))
        assert list(left) == [a for a in ALERTS if a != name]
    none = rule_object({"prometheusRule": {"enabled": True, **{k: {"enabled": False} for k in [
        "keysStale", "refreshFailing", "denyRateSpike", "notReady", "configReloadRejected"]}}})
    assert none["spec"]["groups"] == [{"name": "jwt-authz", "rules": []}]


def test_keys_stale_leaves_out_static_key_sets():
    rule = rule_object({"config": {"issuers": [
        {"issuer": "https://idp.example.com", "audiences": ["a"]},
        {"issuer": "https://inline.example", "audiences": ["a"], "jwks_inline": {"keys": []}},
        {"issuer": "https://file.example", "audiences": ["a"], "jwks_file": "/etc/jwks.json"},
    ]}})
    expr = alerts(rule)["JwtAuthzKeysStale"]["expr"]
    assert 'issuer!="https://inline.example"' in expr and 'issuer!="https://file.example"' in expr
    assert "idp.example.com" not in expr


def test_not_ready_reads_kube_state_metrics_for_the_releases_pods():
    expr = alerts(rule_object())["JwtAuthzNotReady"]["expr"]
    assert f'kube_pod_status_ready{{namespace="{NAMESPACE}",pod=~"{RELEASE}-[a-z0-9]+-[a-z0-9]+",condition="true"}}' in expr
    assert "jwt_authz_jwks_keys" in expr and "up{" in expr


def test_sidecar_mode_selects_by_namespace_and_skips_kube_state_metrics_by_default():
    by_name = alerts(rule_object(sidecar=True))
    assert "job=" not in by_name["JwtAuthzKeysStale"]["expr"]
    assert 'namespace="example"' in by_name["JwtAuthzKeysStale"]["expr"]
    assert "kube_pod_status_ready" not in by_name["JwtAuthzNotReady"]["expr"]
    custom = alerts(rule_object({"prometheusRule": {
        "enabled": True, "selector": 'namespace="shop",job="orders"',
        "notReady": {"podSelector": 'namespace="shop",pod=~"orders-.*"'},
    }}, sidecar=True))
    assert 'jwt_authz_jwks_keys{namespace="shop",job="orders"}' in custom["JwtAuthzNotReady"]["expr"]
    assert 'kube_pod_status_ready{namespace="shop",pod=~"orders-.*",condition="true"}' in custom["JwtAuthzNotReady"]["expr"]


def alert_queries(rule: dict) -> list[Query]:
    return [Query(f"alert {name}", r["expr"]) for name, r in alerts(rule).items()]


@pytest.mark.parametrize("sidecar", [False, True], ids=["standalone", "sidecar"])
def test_every_metric_the_alerts_query_is_exported(metrics, sidecar):
    queries = alert_queries(rule_object(sidecar=sidecar))
    problems = [p for q in queries for p in problems_with(q, metrics, external=set(EXTERNAL_METRICS))]
    assert not problems, "\n".join(problems)
    # Only the documented outside series, never a misspelt jwt_authz_ one passing as "external".
    named = {name for q in queries for name, _ in analyse(q.expr).selectors}
    assert named - set(metrics.types) - {f"{f}_{s}" for f in metrics.types for s in ("bucket", "sum", "count")} <= set(
        EXTERNAL_METRICS
    )


def test_deny_reasons_in_the_schema_are_the_ones_jwt_authz_counts(metrics):
    schema = json.loads((CHART / "values.schema.json").read_text())
    enum = schema["properties"]["prometheusRule"]["properties"]["denyRateSpike"]["properties"]["excludeReasons"]["items"]["enum"]
    reasons = metrics.values[("jwt_authz_checks_total", "reason")] - {"ok", "resource_metadata"}
    assert set(enum) == reasons


# === values ===


def test_chart_lints_clean_with_monitoring_on():
    report = helm.lint(CHART, MONITORING_ON, strict=True, kube_version="v1.30.0")
    assert not report["errors"] and not [m for m in report["messages"] if m["severity"] >= 2], report


INVALID_MONITORING_VALUES = {
    "dashboard-flag-as-string": {"grafanaDashboard": {"enabled": "yes"}},
    "dashboard-unknown-key": {"grafanaDashboard": {"enabled": True, "folder": "x"}},
    "rule-unknown-key": {"prometheusRule": {"enabled": True, "interval": "1m"}},
    "stale-threshold-as-number": {"prometheusRule": {"keysStale": {"threshold": 3600}}},
    "stale-threshold-zero": {"prometheusRule": {"keysStale": {"threshold": "0m"}}},
    "window-in-words": {"prometheusRule": {"refreshFailing": {"window": "ten minutes"}}},
    "deny-ratio-above-one": {"prometheusRule": {"denyRateSpike": {"threshold": 2}}},
    "deny-ratio-zero": {"prometheusRule": {"denyRateSpike": {"threshold": 0}}},
    "unknown-deny-reason": {"prometheusRule": {"denyRateSpike": {"excludeReasons": ["missing-token"]}}},
    "empty-severity": {"prometheusRule": {"notReady": {"severity": ""}}},
    "runbook-not-a-url": {"prometheusRule": {"runbookUrl": "docs/runbook"}},
}


@pytest.mark.parametrize("values", INVALID_MONITORING_VALUES.values(), ids=INVALID_MONITORING_VALUES.keys())
def test_schema_rejects_invalid_monitoring_values(values):
    with pytest.raises(helm.HelmValuesError):
        render_chart(values)

