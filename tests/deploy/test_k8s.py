"""The plain manifests in k8s/: fresh from the chart, and the Envoy and Istio examples valid."""

from __future__ import annotations

import subprocess

import pytest
import yaml

import render
from conftest import only
from render import K8S

ENVOY_CONFIGS = ["k8s/envoy-sidecar.yaml", "k8s/sidecar-example.yaml#ConfigMap/example-sidecar-pod-envoy"]


@pytest.fixture(scope="module")
def fresh_render() -> dict[str, str]:
    return render.expected_files()


def test_k8s_holds_every_generated_file(fresh_render):
    assert sorted(fresh_render) == sorted(render.GENERATED)


@pytest.mark.parametrize("name", render.GENERATED)
def test_k8s_file_equals_a_fresh_render(name, fresh_render):
    fresh = fresh_render[name]
    path = K8S / name
    assert path.exists(), f"k8s/{name} is missing: run scripts/render-k8s"
    assert path.read_text() == fresh, f"k8s/{name} is stale: run scripts/render-k8s"


def envoy_config_text(ref: str) -> str:
    """An Envoy config from a file in k8s/, or from `file#ConfigMap/name` (its envoy.yaml)."""
    file, _, configmap = ref.partition("#")
    text = (render.ROOT / file).read_text()
    if not configmap:
        return text
    kind, name = configmap.split("/")
    obj = next(o for o in yaml.safe_load_all(text) if o and o["kind"] == kind and o["metadata"]["name"] == name)
    return obj["data"]["envoy.yaml"]


@pytest.mark.parametrize("ref", ENVOY_CONFIGS)
def test_envoy_config_passes_envoy_validate(ref, envoy, tmp_path):
    config = tmp_path / "envoy.yaml"
    config.write_text(envoy_config_text(ref))
    run = subprocess.run(
        [envoy, "--mode", "validate", "-c", str(config), "--disable-hot-restart", "--log-level", "warn"],
        capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 0, f"envoy --mode validate rejected {ref}:\n{run.stdout}\n{run.stderr}"
    assert "deprecated" not in (run.stdout + run.stderr).lower(), run.stdout + run.stderr


def test_envoy_sidecar_config_fails_closed_on_jwt_authz():
    config = yaml.safe_load(envoy_config_text(ENVOY_CONFIGS[0]))
    [listener] = config["static_resources"]["listeners"]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    filters = [f["name"] for f in hcm["http_filters"]]
    assert filters == ["envoy.filters.http.ext_authz", "envoy.filters.http.router"]
    ext_authz = hcm["http_filters"][0]["typed_config"]
    assert ext_authz["transport_api_version"] == "V3"
    assert ext_authz["failure_mode_allow"] is False
    assert ext_authz["grpc_service"]["envoy_grpc"]["cluster_name"] == "jwt_authz"
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    cluster = clusters["jwt_authz"]
    options = cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert "http2_protocol_options" in options["explicit_http_config"]  # gRPC needs HTTP/2
    socket = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    assert (socket["address"], socket["port_value"]) == ("127.0.0.1", 9191)


def test_istio_provider_points_at_the_rendered_service():
    objs = [o for o in yaml.safe_load_all((K8S / "jwt-authz.yaml").read_text()) if o]
    service = only(objs, "Service")
    grpc_port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc")
    mesh = yaml.safe_load((K8S / "istio" / "meshconfig.yaml").read_text())
    [provider] = mesh["meshConfig"]["extensionProviders"]
    grpc = provider["envoyExtAuthzGrpc"]
    assert grpc["service"] == f"{service['metadata']['name']}.jwt-authz.svc.cluster.local"
    assert grpc["port"] == grpc_port
    assert grpc["failOpen"] is False

    policy = yaml.safe_load((K8S / "istio" / "authorization-policy.yaml").read_text())
    assert policy["apiVersion"] == "security.istio.io/v1"
    assert policy["kind"] == "AuthorizationPolicy"
    assert policy["spec"]["action"] == "CUSTOM"
    assert policy["spec"]["provider"] == {"name": provider["name"]}
    assert policy["spec"]["rules"], "a CUSTOM policy without rules matches nothing"
