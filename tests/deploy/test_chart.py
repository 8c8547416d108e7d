"""The Helm chart (helm/jwt-authz) and its sidecar example, rendered with Helm's v4 SDK."""

from __future__ import annotations

import helm_python as helm
import pytest
import yaml
from kubernetes_validate import utils as kube

import pod_security
from conftest import (
    ALL_ON_VALUES,
    KUBE_VERSIONS,
    config_file,
    only,
    render_chart,
    render_sidecar_example,
)
from render import CHART, SIDECAR_EXAMPLE

# Custom resources: kubernetes-validate has no schema for them, so their shape is asserted instead.
CUSTOM_KINDS = {"ServiceMonitor"}
# What the core reads (src/config.rs, notes/CONTRACT.md): keys of the config file and of each issuer.
CONFIG_KEYS = {"forward_auth", "proxy", "listen", "realm", "drain_timeout", "upstream_headers", "issuers"}
ISSUER_KEYS = {
    "issuer", "audiences", "discovery_url", "jwks_uri", "jwks_file", "jwks_inline", "ca_file", "cache_file",
    "algorithms", "leeway", "refresh_interval", "min_refresh_interval", "unknown_kid_cooldown", "max_wait",
    "max_stale", "connect_timeout", "request_timeout", "max_response_bytes", "allow_insecure_http",
}


def jwt_authz_container(pod: dict) -> dict:
    return next(c for c in pod_security.all_containers(pod) if c["name"] == "jwt-authz")


# === lint ===


@pytest.mark.parametrize("chart", [CHART, SIDECAR_EXAMPLE], ids=lambda p: p.name)
def test_chart_lints_clean_in_strict_mode(chart):
    report = helm.lint(chart, strict=True, kube_version="v1.30.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # 2 = warning, 3 = error
    assert not report["errors"] and not problems, report


def test_chart_lints_clean_with_every_option_on():
    report = helm.lint(CHART, ALL_ON_VALUES, strict=True, kube_version="v1.30.0")
    assert not report["errors"] and not [m for m in report["messages"] if m["severity"] >= 2], report


# === what each mode renders ===


def test_default_values_render_a_standalone_deployment(default_objects):
    assert sorted(o["kind"] for o in default_objects) == [
        "ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "ServiceAccount",
    ]
    assert only(default_objects, "Deployment")["spec"]["replicas"] == 2


def test_every_optional_object_renders_when_enabled(all_on_objects):
    assert sorted(o["kind"] for o in all_on_objects) == [
        "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "NetworkPolicy", "PodDisruptionBudget",
        "Service", "ServiceAccount", "ServiceMonitor",
    ]
    # The HPA owns the replica count.
    assert "replicas" not in only(all_on_objects, "Deployment")["spec"]


def test_sidecar_mode_renders_nothing_of_its_own():
    assert render_chart({"mode": "sidecar"}) == []


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("fixture", ["default_objects", "all_on_objects", "sidecar_objects"])
def test_every_rendered_object_validates_strictly(request, fixture, kube_version):
    errors = []
    for obj in request.getfixturevalue(fixture):
        if obj["kind"] in CUSTOM_KINDS:
            continue
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            kube.validate(obj, kube_version, strict=True)
        except kube.ValidationError as e:
            errors.append(f"{name}: {'.'.join(str(p) for p in e.path)}: {e.message}")
        except kube.SchemaNotFoundError as e:
            errors.append(f"{name}: {e.message}")
    assert not errors, f"invalid for Kubernetes {kube_version}:\n" + "\n".join(errors)


def test_service_monitor_scrapes_the_admin_port(all_on_objects):
    monitor = only(all_on_objects, "ServiceMonitor")
    service = only(all_on_objects, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert set(monitor["spec"]) == {"selector", "endpoints"}
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint == {"port": "admin", "path": "/metrics", "scheme": "http", "interval": "15s", "scrapeTimeout": "10s"}
    assert "admin" in {p["name"] for p in service["spec"]["ports"]}


def test_service_exposes_grpc_and_admin_with_app_protocols(default_objects, all_on_objects):
    ports = {p["name"]: p for p in only(default_objects, "Service")["spec"]["ports"]}
    assert (ports["grpc"]["port"], ports["grpc"]["appProtocol"]) == (9191, "grpc")
    assert (ports["admin"]["port"], ports["admin"]["appProtocol"]) == (9090, "http")
    assert {"forward-auth", "proxy"}.isdisjoint(ports), "HTTP front ends are off by default"
    ports = {p["name"]: p for p in only(all_on_objects, "Service")["spec"]["ports"]}
    assert ports["grpc"]["appProtocol"] == "kubernetes.io/h2c"
    assert (ports["forward-auth"]["port"], ports["forward-auth"]["appProtocol"]) == (9292, "http")
    assert (ports["proxy"]["port"], ports["proxy"]["targetPort"]) == (8080, "proxy")
    selector = only(default_objects, "Service")["spec"]["selector"]
    pod_labels = only(default_objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items()


def test_network_policy_admits_only_the_listed_peers_on_each_port(all_on_objects):
    spec = only(all_on_objects, "NetworkPolicy")["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    grpc, forward_auth, proxy, admin = spec["ingress"]
    assert grpc["ports"] == [{"port": "grpc", "protocol": "TCP"}]
    assert grpc["from"] == ALL_ON_VALUES["networkPolicy"]["grpcFrom"]
    assert forward_auth["ports"] == [{"port": "forward-auth", "protocol": "TCP"}]
    assert forward_auth["from"] == ALL_ON_VALUES["networkPolicy"]["forwardAuthFrom"]
    assert proxy["ports"] == [{"port": "proxy", "protocol": "TCP"}]
    assert proxy["from"] == ALL_ON_VALUES["networkPolicy"]["proxyFrom"]
    assert admin["ports"] == [{"port": "admin", "protocol": "TCP"}]
    assert admin["from"] == ALL_ON_VALUES["networkPolicy"]["adminFrom"]
    assert spec["egress"] == ALL_ON_VALUES["networkPolicy"]["egress"]


# === the pod ===


@pytest.mark.parametrize("fixture", ["default_objects", "all_on_objects", "sidecar_objects"])
def test_pods_meet_the_restricted_pod_security_standard(request, fixture):
    pod = only(request.getfixturevalue(fixture), "Deployment")["spec"]["template"]["spec"]
    assert pod_security.violations(pod) == []
    assert pod["automountServiceAccountToken"] is False
    for container in pod_security.all_containers(pod):
        sc = container["securityContext"]
        assert sc["runAsNonRoot"] is True, container["name"]
        assert sc["runAsUser"] == 65532 and sc["runAsGroup"] == 65532, container["name"]
        assert sc["allowPrivilegeEscalation"] is False, container["name"]
        assert sc["capabilities"] == {"drop": ["ALL"]}, container["name"]
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, container["name"]
        assert sc["readOnlyRootFilesystem"] is True, container["name"]
        assert container["resources"]["requests"].keys() >= {"cpu", "memory"}, container["name"]
        assert "memory" in container["resources"]["limits"], container["name"]


def test_sidecar_container_is_restricted_in_any_pod(sidecar_objects):
    """Added to a pod that sets no securityContext, the jwt-authz container still complies."""
    pod = only(sidecar_objects, "Deployment")["spec"]["template"]["spec"]
    bare_pod = {"containers": [jwt_authz_container(pod)]}
    assert pod_security.violations(bare_pod) == []


def test_container_runs_the_contract_cli_against_the_mounted_config(default_objects):
    pod = only(default_objects, "Deployment")["spec"]["template"]["spec"]
    container = jwt_authz_container(pod)
    assert container["image"] == "jwt-authz:0.1.0"
    assert container["args"] == ["serve", "--config", "/etc/jwt-authz/config.yaml"]
    assert {"name": "JWT_AUTHZ_LOG_FORMAT", "value": "json"} in container["env"]
    [mount] = container["volumeMounts"]
    assert (mount["mountPath"], mount["readOnly"]) == ("/etc/jwt-authz", True)
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == only(default_objects, "ConfigMap")["metadata"]["name"]


def test_image_digest_wins_over_tag(all_on_objects):
    pod = only(all_on_objects, "Deployment")["spec"]["template"]["spec"]
    assert jwt_authz_container(pod)["image"] == "registry.example.com/platform/jwt-authz@sha256:" + "ab" * 32


def test_probes_use_readyz_for_readiness_and_healthz_for_liveness(default_objects):
    container = jwt_authz_container(only(default_objects, "Deployment")["spec"]["template"]["spec"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": 9191, "admin": 9090}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}


def test_termination_grace_covers_the_prestop_sleep_and_drain(default_objects):
    pod = only(default_objects, "Deployment")["spec"]["template"]["spec"]
    container = jwt_authz_container(pod)
    sleep = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = int(config_file(default_objects, "jwt-authz")["drain_timeout"].removesuffix("s"))
    assert pod["terminationGracePeriodSeconds"] > sleep + drain


@pytest.mark.parametrize(
    "values",
    [
        {"terminationGracePeriodSeconds": 15},  # 5s preStop + 10s drain leaves nothing to spare
        {"config": {"drain_timeout": "1m"}},
        {"config": {"drain_timeout": "29500ms"}},
    ],
    ids=["grace-equals-drain", "drain-in-minutes", "drain-in-ms"],
)
def test_render_fails_when_grace_period_cannot_cover_the_drain(values):
    # Helm merges maps into the defaults, so the default issuers stay.
    with pytest.raises(helm.HelmRenderError, match="terminationGracePeriodSeconds"):
        render_chart(values)


def test_config_changes_roll_the_pods():
    def checksum(values):
        pod = only(render_chart(values), "Deployment")["spec"]["template"]
        return pod["metadata"]["annotations"]["checksum/jwt-authz-config"]

    base = checksum({})
    assert checksum({}) == base
    assert checksum({"config": {"realm": "other"}}) != base
    assert checksum({"ports": {"grpc": 9191, "admin": 9091}}) != base


# === the config file ===


def test_config_file_holds_only_contract_keys(default_objects, all_on_objects):
    for objs in (default_objects, all_on_objects):
        config = config_file(objs, "jwt-authz")
        assert set(config) <= CONFIG_KEYS
        for issuer in config["issuers"]:
            assert set(issuer) <= ISSUER_KEYS
    config = config_file(default_objects, "jwt-authz")
    assert config["listen"] == {"grpc": "0.0.0.0:9191", "admin": "0.0.0.0:9090"}
    assert config["drain_timeout"] == "10s"


def test_values_config_reaches_the_file_unchanged(all_on_objects):
    config = config_file(all_on_objects, "jwt-authz")
    del config["listen"]
    del config["forward_auth"]["listen"]
    del config["proxy"]["listen"]
    assert config == ALL_ON_VALUES["config"]


def test_http_front_ends_listen_on_the_chart_ports(all_on_objects):
    config = config_file(all_on_objects, "jwt-authz")
    assert config["forward_auth"]["listen"] == "0.0.0.0:9292"
    assert config["proxy"]["listen"] == "0.0.0.0:8080"
    container = jwt_authz_container(only(all_on_objects, "Deployment")["spec"]["template"]["spec"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": 9191, "forward-auth": 9292, "proxy": 8080, "admin": 9090}


def test_sidecar_forward_auth_binds_loopback_and_the_proxy_is_public():
    objs = render_sidecar_example({"jwt-authz": {"ports": {"grpc": 9191, "admin": 9090, "forwardAuth": 9393, "proxy": 8081},
                                                 "config": {"forward_auth": {}, "proxy": {"upstream": "http://127.0.0.1:8000"}}}})
    config = config_file(objs, "example-jwt-authz")
    assert config["forward_auth"] == {"listen": "127.0.0.1:9393"}
    assert config["proxy"]["listen"] == "0.0.0.0:8081"
    container = jwt_authz_container(only(objs, "Deployment")["spec"]["template"]["spec"])
    assert [p["name"] for p in container["ports"]] == ["proxy", "admin"]


# === values schema ===

INVALID_VALUES = {
    "unknown-mode": {"mode": "daemonset"},
    "unknown-top-level-key": {"replicas": 3},
    "replicas-as-string": {"replicaCount": "two"},
    "pull-policy": {"image": {"repository": "jwt-authz", "pullPolicy": "Sometimes"}},
    "bad-digest": {"image": {"repository": "jwt-authz", "digest": "latest"}},
    "port-out-of-range": {"ports": {"grpc": 70000, "admin": 9090}},
    "unknown-config-key": {"config": {"cache": {}}},
    "listen-is-derived": {"config": {"listen": {"grpc": "0.0.0.0:9191"}}},
    "no-issuers": {"config": {"issuers": []}},
    "issuer-without-audience": {"config": {"issuers": [{"issuer": "https://a"}]}},
    "issuer-not-a-url": {"config": {"issuers": [{"issuer": "idp.example.com", "audiences": ["x"]}]}},
    "unknown-issuer-key": {"config": {"issuers": [{"issuer": "https://a", "audiences": ["x"], "secret": "s"}]}},
    "symmetric-algorithm": {"config": {"issuers": [{"issuer": "https://a", "audiences": ["x"], "algorithms": ["HS256"]}]}},
    "duration-in-words": {"config": {"drain_timeout": "10 seconds"}},
    "duration-as-number": {"config": {"drain_timeout": 10}},
    "log-format": {"log": {"format": "xml"}},
    "flag-as-string": {"serviceMonitor": {"enabled": "yes"}},
    "unknown-nested-key": {"autoscaling": {"enabled": True, "targetMemory": 80}},
    "pdb-bad-percentage": {"podDisruptionBudget": {"maxUnavailable": "half"}},
    "app-protocol": {"service": {"grpcAppProtocol": "http2"}},
    "realm-with-quote": {"config": {"realm": 'a"b'}},
    "forward-auth-listen-is-derived": {"config": {"forward_auth": {"listen": "0.0.0.0:9292"}}},
    "forward-auth-unknown-mode": {"config": {"forward_auth": {"original_request": "traefik"}}},
    "forward-auth-prefix-trailing-slash": {"config": {"forward_auth": {"path_prefix": "/ext_authz/"}}},
    "proxy-without-upstream": {"config": {"proxy": {}}},
    "proxy-https-upstream": {"config": {"proxy": {"upstream": "https://127.0.0.1:8443"}}},
    "proxy-timeout-in-words": {"config": {"proxy": {"upstream": "http://app:8000", "response_timeout": "a minute"}}},
    "proxy-port-out-of-range": {"ports": {"grpc": 9191, "admin": 9090, "proxy": 0}},
    "tiny-response-limit": {"config": {"issuers": [{"issuer": "https://a", "audiences": ["x"], "max_response_bytes": 100}]}},
}


@pytest.mark.parametrize("values", INVALID_VALUES.values(), ids=INVALID_VALUES.keys())
def test_schema_rejects_invalid_values(values):
    with helm.Chart.load(CHART) as chart:
        with pytest.raises(helm.HelmValuesError):
            chart.validate_schema(chart.merge_values(values))
    with pytest.raises(helm.HelmValuesError):
        render_chart(values)


def test_schema_rejects_invalid_values_given_through_a_parent_chart():
    with pytest.raises(helm.HelmValuesError, match="jwt-authz"):
        render_sidecar_example({"jwt-authz": {"mode": "sidecar", "sidecarMode": True}})


def test_schema_accepts_every_documented_value():
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(chart.merge_values(ALL_ON_VALUES))
        chart.validate_schema(chart.merge_values({"mode": "sidecar", "sidecar": {"native": False}}))


# === sidecar mode ===


def test_sidecar_example_runs_jwt_authz_as_a_native_sidecar(sidecar_objects):
    pod = only(sidecar_objects, "Deployment")["spec"]["template"]["spec"]
    [jwt_authz] = pod["initContainers"]
    assert jwt_authz["name"] == "jwt-authz"
    assert jwt_authz["restartPolicy"] == "Always"
    assert jwt_authz["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert "lifecycle" not in jwt_authz  # stopped after the app and Envoy; no preStop delay needed
    assert [c["name"] for c in pod["containers"]] == ["envoy", "app"]
    # Only Envoy takes traffic from outside the pod; the app and jwt-authz's gRPC are on loopback.
    assert [p["containerPort"] for p in pod["containers"][0]["ports"]] == [8000]
    assert "ports" not in pod["containers"][1]
    assert {"name": "HOST", "value": "127.0.0.1"} in pod["containers"][1]["env"]
    assert [p["name"] for p in jwt_authz["ports"]] == ["admin"]


def test_sidecar_example_wires_configs_to_containers(sidecar_objects):
    pod_template = only(sidecar_objects, "Deployment")["spec"]["template"]
    pod = pod_template["spec"]
    configmaps = {o["metadata"]["name"]: o for o in sidecar_objects if o["kind"] == "ConfigMap"}
    for volume in pod["volumes"]:
        assert volume["configMap"]["name"] in configmaps, volume
    config = config_file(sidecar_objects, "example-jwt-authz")
    assert config["listen"] == {"grpc": "127.0.0.1:9191", "admin": "0.0.0.0:9090"}
    envoy_config = yaml.safe_load(configmaps["example-sidecar-pod-envoy"]["data"]["envoy.yaml"])
    cluster = next(c for c in envoy_config["static_resources"]["clusters"] if c["name"] == "jwt_authz")
    address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    assert f"{address['address']}:{address['port_value']}" == config["listen"]["grpc"]
    assert set(pod_template["metadata"]["annotations"]) == {"checksum/jwt-authz-config", "checksum/envoy-config"}
    service = only(sidecar_objects, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_sidecar_container_can_be_a_plain_container():
    objs = render_sidecar_example({"jwt-authz": {"mode": "sidecar", "sidecar": {"native": False}}})
    container = jwt_authz_container(only(objs, "Deployment")["spec"]["template"]["spec"])
    assert "restartPolicy" not in container


def test_sidecar_templates_refuse_a_standalone_subchart():
    with pytest.raises(helm.HelmRenderError, match="mode: sidecar"):
        render_sidecar_example({"jwt-authz": {"mode": "standalone"}})
