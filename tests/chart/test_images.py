"""The Dockerfiles, checked without building them (no registry is reachable here; the
real-cluster tests build them with buildah): multi-stage, the base as a build argument,
pinned, non-root, and an entrypoint that exists. Also skaffold and kind wiring."""

from __future__ import annotations

import ast
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from .conftest import CHART, ROOT

BASE_DOCKERFILE = ROOT / "services/common/Dockerfile"
# image (= folder name = values key) -> folder
DEPLOYABLES = {
    "users": ROOT / "services/users",
    "notifications": ROOT / "services/notifications",
    "recommendations": ROOT / "services/recommendations",
    "scheduler": ROOT / "services/scheduler",
    "gateway": ROOT / "gateway",
    "operator": ROOT / "operator",
}
PINNED_PYTHON = re.compile(r"^python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?$")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, op: str) -> list[str]:
        return [args for o, args in self.instructions if o == op]


@dataclass
class Dockerfile:
    args_before_from: dict[str, str]
    stages: list[Stage]


def parse(path: Path) -> Dockerfile:
    """Instructions with line continuations joined and comments dropped."""
    lines: list[str] = []
    current = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    assert not current, f"{path}: dangling line continuation"
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        op, _, rest = line.partition(" ")
        op = op.upper()
        rest = rest.strip()
        if op == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name))
        elif not stages:
            assert op == "ARG", f"{path}: only ARG may come before FROM, got {op}"
            key, _, default = rest.partition("=")
            args[key] = default
        else:
            stages[-1].instructions.append((op, rest))
    return Dockerfile(args, stages)


def scripts_of(folder: Path) -> dict[str, str]:
    project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
    return dict(project.get("scripts", {}))


def defines_function(folder: Path, target: str) -> bool:
    module, _, func = target.partition(":")
    path = folder / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = folder / module.replace(".", "/") / "__init__.py"
    if not path.exists():
        return False
    tree = ast.parse(path.read_text())
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == func
        for node in tree.body
    ) or any(
        isinstance(node, ast.ImportFrom)
        and any(a.asname == func or a.name == func for a in node.names)
        for node in tree.body
    )


def exec_form(args: str) -> list[str]:
    assert args.startswith("["), f"use the exec form: {args}"
    return list(yaml.safe_load(args))


def test_base_image_is_a_pinned_build_argument() -> None:
    df = parse(BASE_DOCKERFILE)
    assert PINNED_PYTHON.match(df.args_before_from["PYTHON_BASE"]), df.args_before_from
    assert len(df.stages) >= 2, "the base builds in one stage and ships another"
    assert all(stage.base == "${PYTHON_BASE}" for stage in df.stages)
    build, final = df.stages[0], df.stages[-1]
    assert any("requirements-runtime.lock" in a for a in build.all("COPY"))
    assert any("-r /tmp/requirements-runtime.lock" in a for a in build.all("RUN"))
    assert any(re.search(r"setuptools==\d", a) for a in build.all("RUN")), "pin the build backend"
    # The final stage carries no compiler and runs as a non-root numeric user.
    assert not any("apt-get" in a for a in final.all("RUN"))
    assert any(a.startswith("--from=") and "/opt/herald" in a for a in final.all("COPY"))
    assert final.all("USER")[-1] == "10001"
    assert any("useradd" in a and "--uid 10001" in a for a in final.all("RUN"))
    env = " ".join(final.all("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env  # nothing written on a read-only root


@pytest.mark.parametrize("image", sorted(DEPLOYABLES))
def test_component_dockerfile(image: str) -> None:
    folder = DEPLOYABLES[image]
    path = folder / "Dockerfile"
    assert path.exists(), f"{path} is missing"
    df = parse(path)
    assert df.args_before_from == {"BASE": "herald-base"}
    assert len(df.stages) >= 2, "multi-stage: build the package, ship only its files"
    assert all(stage.base == "${BASE}" for stage in df.stages), "the base is the build argument"
    for stage in df.stages:
        assert "latest" not in stage.base
    build, final = df.stages[0], df.stages[-1]
    rel = folder.relative_to(ROOT).as_posix()
    assert any(shlex.split(a)[0] == rel for a in build.all("COPY")), f"COPY {rel} missing"
    for copy in build.all("COPY"):
        src = shlex.split(copy)[0]
        assert (ROOT / src).exists(), f"COPY source {src} does not exist"
    installs = [a for a in build.all("RUN") if "pip install" in a]
    assert installs and all("--no-deps" in a for a in installs), "dependencies come from the base"
    assert final.all("USER") and final.all("USER")[-1] == "10001"
    assert not any("apt-get" in a for a in final.all("RUN"))
    assert not final.all("ADD")

    entrypoint = exec_form(final.all("ENTRYPOINT")[-1])
    assert entrypoint == [f"herald-{image}"]
    if not (folder / "pyproject.toml").exists():
        pytest.skip(
            f"{rel}/pyproject.toml does not exist yet; Dockerfile checked against the contract"
        )
    scripts = scripts_of(folder)
    assert entrypoint[0] in scripts, f"{entrypoint[0]} is not a console script of {rel}"
    assert defines_function(folder, scripts[entrypoint[0]]), scripts[entrypoint[0]]
    cmds = final.all("CMD")
    if cmds:
        (command,) = exec_form(cmds[-1])
        cli = scripts[entrypoint[0]].partition(":")[0].replace(".", "/") + ".py"
        assert f'"{command}"' in (folder / cli).read_text(), f"{cli} has no {command!r} command"
    if image != "operator":
        port = yaml.safe_load((CHART / "values.yaml").read_text())[image]["port"]
        assert final.all("EXPOSE") == [str(port)]
        assert f"HERALD_{image.upper()}_PORT={port}" in " ".join(final.all("ENV"))


def test_build_context_excludes_local_state() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", ".run", "**/__pycache__", "**/*.egg-info"):
        assert entry in ignored


def test_skaffold_builds_every_image_and_sets_the_chart_values() -> None:
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    artifacts = {a["image"]: a for a in config["build"]["artifacts"]}
    assert set(artifacts) == {"herald-base", *DEPLOYABLES}
    assert artifacts["herald-base"]["docker"]["dockerfile"] == "services/common/Dockerfile"
    for image, folder in DEPLOYABLES.items():
        assert (ROOT / artifacts[image]["docker"]["dockerfile"]).resolve() == folder / "Dockerfile"
        assert artifacts[image]["requires"] == [{"image": "herald-base", "alias": "BASE"}]
    (release,) = config["manifests"]["helm"]["releases"]
    assert (ROOT / release["chartPath"]).resolve() == CHART
    for values_file in release["valuesFiles"]:
        assert (ROOT / values_file).exists()
    templates = release["setValueTemplates"]
    for image in DEPLOYABLES:
        assert templates[f"{image}.image.repository"] == f"{{{{.IMAGE_REPO_{image}}}}}"
        assert f"{{{{.IMAGE_TAG_{image}}}}}" in templates[f"{image}.image.tag"]
    assert "helm" in config["deploy"]
    profiles = {p["name"]: p for p in config["profiles"]}
    (patch,) = profiles["monitoring"]["patches"]
    assert patch["value"] == "charts/herald/values-monitoring.yaml"


def test_kind_cluster_is_ingress_ready() -> None:
    config = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    (node,) = [n for n in config["nodes"] if n["role"] == "control-plane"]
    assert re.match(r"^kindest/node:v1\.\d+\.\d+(@sha256:[0-9a-f]{64})?$", node["image"])
    assert "ingress-ready=true" in " ".join(node["kubeadmConfigPatches"])
    ports = {(m["containerPort"], m["hostPort"]) for m in node["extraPortMappings"]}
    assert {(80, 80), (443, 443)} <= ports
