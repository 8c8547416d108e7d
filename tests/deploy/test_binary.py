"""The config files the charts render are ones jwt-authz itself accepts, and what the values schema
rejects jwt-authz rejects too. Runs the built binary: $JWT_AUTHZ_BIN, else the newest of the
static, release and debug builds under target/."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import ALL_ON_VALUES, config_file, render_chart, render_sidecar_example
from render import ROOT

STARTUP_GRACE_S = 1.5
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


@pytest.fixture(scope="module")
def jwt_authz() -> str:
    if os.environ.get("JWT_AUTHZ_BIN"):
        return os.environ["JWT_AUTHZ_BIN"]
    builds = [
        ROOT / "target" / "x86_64-unknown-linux-musl" / "release" / "jwt-authz",
        ROOT / "target" / "release" / "jwt-authz",
        ROOT / "target" / "debug" / "jwt-authz",
    ]
    built = [b for b in builds if b.exists()]
    if not built:
        pytest.fail("no jwt-authz binary: run `cargo build` (or scripts/build-static), or set JWT_AUTHZ_BIN", pytrace=False)
    return str(max(built, key=lambda b: b.stat().st_mtime))


def loopback_only(config: dict, tmp_path: Path) -> dict:
    """The same config with every address moved to loopback, so starting it reaches no network
    (ephemeral listen ports; issuers on a closed local port, so keys never load, which is fine here),
    and the files it names, which would be mounted in the pod, made in tmp_path."""
    config = yaml.safe_load(yaml.safe_dump(config))
    config["listen"] = {"grpc": "127.0.0.1:0", "admin": "127.0.0.1:0"}
    if "forward_auth" in config:
        config["forward_auth"]["listen"] = "127.0.0.1:0"
    if "proxy" in config:
        config["proxy"] |= {"listen": "127.0.0.1:0", "upstream": "http://127.0.0.1:1"}
    for i, issuer in enumerate(config["issuers"]):
        issuer["issuer"] = f"http://127.0.0.1:1/issuer-{i}"
        for key in ("discovery_url", "jwks_uri"):
            if key in issuer:
                issuer[key] = f"http://127.0.0.1:1/{key}-{i}"
        if "ca_file" in issuer:
            issuer["ca_file"] = str(tmp_path / f"ca-{i}.crt")
            shutil.copy(CA_BUNDLE, issuer["ca_file"])
        if "cache_file" in issuer:
            issuer["cache_file"] = str(tmp_path / f"cache-{i}.json")
    return config


def start(binary: str, config: dict, tmp_path: Path) -> subprocess.Popen:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.Popen(
        [binary, "serve", "--config", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "JWT_AUTHZ_LOG": "warn", "JWT_AUTHZ_LOG_FORMAT": "json"},
    )


RENDERED_CONFIGS = {
    "default": lambda: config_file(render_chart(), "jwt-authz"),
    "all-options": lambda: config_file(render_chart(ALL_ON_VALUES), "jwt-authz"),
    "sidecar-example": lambda: config_file(render_sidecar_example(), "example-jwt-authz"),
}


@pytest.mark.parametrize("name", RENDERED_CONFIGS)
def test_jwt_authz_serves_the_rendered_config_and_drains_on_sigterm(name, jwt_authz, tmp_path):
    config = loopback_only(RENDERED_CONFIGS[name](), tmp_path)
    proc = start(jwt_authz, config, tmp_path)
    try:
        time.sleep(STARTUP_GRACE_S)
        assert proc.poll() is None, f"jwt-authz exited {proc.returncode} on the {name} config:\n{proc.stdout.read()}"
        proc.send_signal(signal.SIGTERM)
        drain_s = int(config["drain_timeout"].removesuffix("s"))
        rc = proc.wait(timeout=drain_s + 2)
        assert rc == 0, proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# Config-level mistakes the values schema rejects (see test_chart.INVALID_VALUES): jwt-authz rejects them
# as well. (The schema is stricter in one way: it takes durations only in the short form "10s", which
# the chart must read to size terminationGracePeriodSeconds; jwt-authz also takes "10 seconds".)
INVALID_CONFIGS = {
    "unknown-key": {"cache": {}},
    "duration-as-number": {"drain_timeout": 10},
    "symmetric-algorithm": {"issuers": [{"issuer": "http://127.0.0.1:1/i", "audiences": ["x"], "algorithms": ["HS256"]}]},
    "issuer-without-audience": {"issuers": [{"issuer": "http://127.0.0.1:1/i"}]},
    "unknown-issuer-key": {"issuers": [{"issuer": "http://127.0.0.1:1/i", "audiences": ["x"], "secret": "s"}]},
    "realm-with-quote": {"realm": 'a"b'},
    "forward-auth-unknown-mode": {"forward_auth": {"listen": "127.0.0.1:0", "original_request": "traefik"}},
    "forward-auth-prefix-trailing-slash": {"forward_auth": {"listen": "127.0.0.1:0", "path_prefix": "/x/"}},
    "proxy-https-upstream": {"proxy": {"listen": "127.0.0.1:0", "upstream": "https://127.0.0.1:1"}},
}


@pytest.mark.parametrize("change", INVALID_CONFIGS.values(), ids=INVALID_CONFIGS.keys())
def test_jwt_authz_rejects_what_the_schema_rejects(change, jwt_authz, tmp_path):
    config = loopback_only(config_file(render_chart(), "jwt-authz"), tmp_path) | change
    proc = start(jwt_authz, config, tmp_path)
    try:
        rc = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 2, f"expected exit 2 (invalid config), got {rc}:\n{proc.stdout.read()}"


def fields_jwt_authz_knows(binary: str, config: dict, tmp_path: Path) -> set[str]:
    """The field names serde lists when `config` carries an unknown one ("expected `a` or `b`")."""
    proc = start(binary, config, tmp_path)
    try:
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    match = re.search(r"unknown field `zz_unknown`, expected (.*)", out)
    assert match, f"jwt-authz did not name its fields:\n{out}"
    return set(re.findall(r"`([a-z_]+)`", match.group(1)))


def test_values_schema_knows_every_config_key_jwt_authz_knows(jwt_authz, tmp_path):
    """The schema's `config` mirrors the binary's config struct, so the two cannot drift apart."""
    schema = json.loads((ROOT / "helm" / "jwt-authz" / "values.schema.json").read_text())
    config_schema = schema["properties"]["config"]
    issuer = {"issuer": "http://127.0.0.1:1/i", "audiences": ["x"]}

    top = fields_jwt_authz_knows(jwt_authz, {"issuers": [issuer], "zz_unknown": 1}, tmp_path)
    assert top - {"listen"} == set(config_schema["properties"])
    issuer_keys = fields_jwt_authz_knows(jwt_authz, {"issuers": [{**issuer, "zz_unknown": 1}]}, tmp_path)
    assert issuer_keys == set(config_schema["properties"]["issuers"]["items"]["properties"])
    header_keys = fields_jwt_authz_knows(
        jwt_authz, {"issuers": [issuer], "upstream_headers": {"zz_unknown": "x"}}, tmp_path
    )
    assert header_keys == set(config_schema["properties"]["upstream_headers"]["properties"])
    for front_end, required in (("forward_auth", {}), ("proxy", {"upstream": "http://127.0.0.1:1"})):
        keys = fields_jwt_authz_knows(
            jwt_authz,
            {"issuers": [issuer], front_end: {"listen": "127.0.0.1:0", **required, "zz_unknown": 1}},
            tmp_path,
        )
        # `listen` is derived from the chart's ports, so the schema does not offer it.
        assert keys - {"listen"} == set(config_schema["properties"][front_end]["properties"]), front_end
