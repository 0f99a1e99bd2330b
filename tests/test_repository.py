"""The repository's own wiring: layout, images and dependency pins agree."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPONENTS = {
    "users": ROOT / "services/users",
    "notifications": ROOT / "services/notifications",
    "recommendations": ROOT / "services/recommendations",
    "scheduler": ROOT / "services/scheduler",
    "gateway": ROOT / "gateway",
}


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)", line)
        if match:
            pins[re.sub(r"\[.*\]", "", match.group(1)).lower()] = match.group(2)
    return pins


def test_top_level_layout() -> None:
    for name in (
        "operator",
        "services",
        "gateway",
        "charts",
        "crds",
        "tests",
        "bench",
        "examples",
        "dev",
        ".ci/run",
        "kind-config.yaml",
        "skaffold.yaml",
        "README.md",
        "ARCHITECTURE.md",
        "pyproject.toml",
        "Makefile",
    ):
        assert (ROOT / name).exists(), f"{name} is missing"


def test_components_have_package_dockerfile_and_readme() -> None:
    for name, folder in COMPONENTS.items():
        for required in ("pyproject.toml", "Dockerfile", "README.md", f"herald_{name}"):
            assert (folder / required).exists(), f"{folder.name}: {required} missing"
        project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
        assert project["name"].startswith("herald-")


def test_runtime_pins_are_the_tested_pins() -> None:
    tested = _pins(ROOT / "requirements.lock")
    runtime = _pins(ROOT / "requirements-runtime.lock")
    assert runtime, "requirements-runtime.lock is empty"
    mismatched = {n: (v, tested.get(n)) for n, v in runtime.items() if tested.get(n) != v}
    assert not mismatched, f"image pins differ from the tested pins: {mismatched}"


def test_skaffold_builds_every_component_from_its_folder() -> None:
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    artifacts = {a["image"]: a for a in config["build"]["artifacts"]}
    assert set(artifacts) == {"herald-base", *COMPONENTS, "operator"}
    for name, folder in COMPONENTS.items():
        dockerfile = artifacts[name]["docker"]["dockerfile"]
        assert (ROOT / dockerfile).resolve() == folder / "Dockerfile"
        assert artifacts[name]["requires"] == [{"image": "herald-base", "alias": "BASE"}]
        text = (folder / "Dockerfile").read_text()
        assert "FROM ${BASE}" in text and "USER 10001" in text


def test_kind_cluster_maps_ingress_ports() -> None:
    config = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    ports = {m["hostPort"] for n in config["nodes"] for m in n.get("extraPortMappings", [])}
    assert {80, 443} <= ports


def test_ruff_is_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_packages_type_check() -> None:
    packages = [
        ROOT / "services/common/herald_common",
        *(folder / f"herald_{name}" for name, folder in COMPONENTS.items()),
    ]
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", *map(str, packages)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
