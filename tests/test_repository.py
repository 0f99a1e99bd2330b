"""The repository's own wiring: layout, images and dependency pins agree."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
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


def _uv_export(*args: str) -> dict[str, str]:
    uv = Path(sys.executable).with_name("uv")  # the pinned uv `make venv` installs
    out = subprocess.run(
        [str(uv), "export", "--frozen", "--offline", "--no-emit-workspace", "--no-hashes", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return {
        m.group(1).lower(): m.group(2)
        for line in out.splitlines()
        if (m := re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line))
    }


def test_runtime_pins_and_tested_pins_are_exported_from_uv_lock() -> None:
    """uv.lock is the one lock of the workspace: requirements.lock is its every package
    at its locked version, requirements-runtime.lock the components' (`make lock`)."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    locked = {p["name"]: p["version"] for p in lock["package"] if "registry" in p["source"]}
    tested = _pins(ROOT / "requirements.lock")
    assert tested == locked, {
        n: (tested.get(n), locked.get(n))
        for n in tested.keys() | locked.keys()
        if tested.get(n) != locked.get(n)
    }
    assert _uv_export("--all-packages", "--all-groups") == tested
    assert _uv_export("--no-dev") == _pins(ROOT / "requirements-runtime.lock")


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


# --- one skeleton for every service (ARCHITECTURE.md, "Roles") -------------------------

SERVICES = ("users", "notifications", "recommendations", "scheduler")
ROLE_KEYS = {
    "routes": "routes",
    "request/answer models": "models",
    "domain": "domain",
    "rules": "rules",
    "storage": "storage",
    "documents": "documents",
    "consumers": "consumers",
    "settings": "settings",
    "commands": "commands",
}
MAX_LINES = 400


def _not_yet(reason: str) -> pytest.MarkDecorator:
    """A service that does not conform yet: the test fails loudly once it does."""
    return pytest.mark.xfail(strict=True, reason=reason)


def _roles() -> dict[str, dict[str, list[str]]]:
    """service → role → module paths (relative to the package), from the roles table."""
    text = (ROOT / "ARCHITECTURE.md").read_text()
    section = text.split("## Roles", 1)[1].split("\n## ", 1)[0]
    rows = [r for r in section.splitlines() if r.startswith("| ") and not r.startswith("| role")]
    table: dict[str, dict[str, list[str]]] = {s: {} for s in SERVICES}
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        key = next((k for p, k in ROLE_KEYS.items() if cells[0].startswith(p)), None)
        if key is None:
            continue
        for service, cell in zip(SERVICES, cells[1:], strict=True):
            table[service][key] = re.findall(r"`([\w/]+\.py)`", cell.split("(")[0] + cell)
    return table


ROLES = _roles()


def _package(service: str) -> Path:
    return COMPONENTS[service] / f"herald_{service}"


def _modules(package: Path) -> list[Path]:
    return sorted(p for p in package.rglob("*.py") if "tests" not in p.parts)


def _rel(path: Path, package: Path) -> str:
    return path.relative_to(package).as_posix()


def test_roles_table_names_every_role() -> None:
    for service in SERVICES:
        assert set(ROLES[service]) == set(ROLE_KEYS.values()), service
        assert ROLES[service]["routes"] and ROLES[service]["domain"], service


@pytest.mark.parametrize("service", SERVICES)
def test_roles_table_files_exist(service: str) -> None:
    package = _package(service)
    missing = [
        f"{role}: {m}"
        for role, modules in ROLES[service].items()
        for m in modules
        if not (package / m).is_file()
    ]
    assert not missing, f"{service}: the roles table names modules that do not exist: {missing}"


COLLECTION_ACCESS = re.compile(
    r"_get_collection\(|get_db\(|\.objects[.(]|from herald_common\.db import [^\n]*"
    r"\b(collection|named)\b"
)


@pytest.mark.parametrize(
    "service",
    [
        "users",
        "recommendations",
        "scheduler",
        "notifications",
    ],
)
def test_only_storage_and_documents_touch_collections(service: str) -> None:
    package = _package(service)
    allowed = set(ROLES[service]["storage"]) | set(ROLES[service]["documents"])
    offenders = [
        f"{_rel(p, package)}:{n}: {line.strip()}"
        for p in _modules(package)
        if _rel(p, package) not in allowed
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if COLLECTION_ACCESS.search(line)
    ]
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize(
    "service",
    [
        "users",
        "recommendations",
        "scheduler",
        "notifications",
    ],
)
def test_routes_only_translate_http(service: str) -> None:
    """Routes import no storage module and never call storage themselves (``run_db``);
    they reach the domain through one typed ``Annotated`` dependency."""
    package = _package(service)
    storage = {m.removesuffix(".py").replace("/", ".") for m in ROLES[service]["storage"]}
    problems = []
    for p in (package / "api").glob("*.py"):
        text = p.read_text()
        for module in storage:
            if re.search(rf"herald_{service}(\.| import ){module}\b", text):
                problems.append(f"api/{p.name} imports {module}")
        if "run_db" in text:
            problems.append(f"api/{p.name} calls storage through run_db")
        if re.search(r"=\s*Depends\(", text):
            problems.append(f"api/{p.name}: a dependency without an Annotated type")
    assert not problems, problems


def _apps() -> dict[str, Any]:
    from herald_notifications.main import create_app as notifications_app
    from herald_recommendations.main import create_app as recommendations_app
    from herald_scheduler.main import create_app as scheduler_app
    from herald_users.main import create_app as users_app

    return {
        "users": users_app,
        "notifications": notifications_app,
        "recommendations": recommendations_app,
        "scheduler": scheduler_app,
    }


@pytest.mark.parametrize("service", SERVICES)
def test_every_route_declares_its_answer(service: str) -> None:
    spec = _apps()[service]().openapi()
    undeclared = []
    for path, item in spec["paths"].items():
        if not path.startswith(("/v1/", "/.well-known/")):
            continue
        for method, operation in item.items():
            status, response = next(
                (s, r) for s, r in operation["responses"].items() if s.startswith("2")
            )
            if status != "204" and "schema" not in response.get("content", {}).get(
                "application/json", {}
            ):
                undeclared.append(f"{method.upper()} {path}")
    assert not undeclared, f"{service}: routes without an answer model: {undeclared}"


@pytest.mark.parametrize(
    "service",
    [
        "recommendations",
        "scheduler",
        "notifications",
    ],
)
def test_consumers_are_started_from_main(service: str) -> None:
    package = _package(service)
    main = (package / "main.py").read_text()
    assert re.search(rf"from herald_{service}\.consumers import [^\n]*start_consumers", main)
    consuming = [
        _rel(p, package)
        for p in _modules(package)
        if ".consume(" in p.read_text() and p.name != "consumers.py"
    ]
    assert not consuming, f"{service}: queues bound outside consumers.py: {consuming}"


OWN_COPIES = re.compile(
    r"^(Clock\s*=|class Clock\b|def utc_?now\(|def _utcnow\(|def utc_day\(|"
    r"_?DUPLICATE_KEY\s*=|class ProcessedEvents\b)",
    re.MULTILINE,
)
EVENT_LITERAL = re.compile(r"^(user|activity|order|campaign|notification)\.[a-z_*]+$")
SOURCE_TREES = {
    "users": ROOT / "services/users/herald_users",
    "recommendations": ROOT / "services/recommendations/herald_recommendations",
    "scheduler": ROOT / "services/scheduler/herald_scheduler",
    "operator": ROOT / "operator/herald_operator",
    "common": ROOT / "services/common/herald_common",
    "notifications": ROOT / "services/notifications/herald_notifications",
    "gateway": ROOT / "gateway/herald_gateway",
}
NOT_YET_SHARED: dict[str, str] = {}
NOT_YET_LITERALS: dict[str, str] = {}


def _trees(exceptions: dict[str, str]) -> list[Any]:
    return [
        pytest.param(name, marks=_not_yet(exceptions[name])) if name in exceptions else name
        for name in SOURCE_TREES
    ]


@pytest.mark.parametrize("tree", _trees(NOT_YET_SHARED))
def test_shared_types_are_not_declared_again(tree: str) -> None:
    root = SOURCE_TREES[tree]
    found = [
        f"{_rel(p, root)}: {m.group(0)}"
        for p in _modules(root)
        if not (tree == "common" and p.name in {"clock.py", "db.py"})
        for m in OWN_COPIES.finditer(p.read_text())
    ]
    assert not found, f"declared again (use herald_common.clock / db / leases): {found}"


@pytest.mark.parametrize("tree", _trees(NOT_YET_LITERALS))
def test_event_types_are_named_only_in_the_contracts(tree: str) -> None:
    import ast

    root = SOURCE_TREES[tree]
    found = [
        f"{_rel(p, root)}:{node.lineno}: {node.value!r}"
        for p in _modules(root)
        if not (tree == "common" and p.name == "events.py")
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and EVENT_LITERAL.match(node.value)
    ]
    assert not found, (
        f"event types outside herald_common.events (use make_event(payload) and the "
        f"binding patterns USER_EVENTS, …): {found}"
    )


@pytest.mark.parametrize("tree", _trees({}))
def test_the_outbox_wake_up_has_one_name(tree: str) -> None:
    root = SOURCE_TREES[tree]
    other_names = re.compile(r"\b(on_staged|on_written|outbox_changed|wake_outbox)\b")
    found = [_rel(p, root) for p in _modules(root) if other_names.search(p.read_text())]
    assert not found, f"call it outbox_written: {found}"


@pytest.mark.parametrize("tree", _trees({}))
def test_events_are_staged_one_way(tree: str) -> None:
    """Only herald_common.outbox writes the outbox fields (stage, outbox_update,
    staged_update); everything else stages through it."""
    root = SOURCE_TREES[tree]
    by_hand = re.compile(r"""["']\$push["']\s*:\s*\{\s*["']outbox["']|push(_all)?__outbox\b""")
    found = [
        _rel(p, root)
        for p in _modules(root)
        if not (tree == "common" and p.name == "outbox.py") and by_hand.search(p.read_text())
    ]
    assert not found, f"stage events with herald_common.outbox: {found}"


LONG_NOT_YET: dict[str, str] = {}


@pytest.mark.parametrize("tree", _trees(LONG_NOT_YET))
def test_modules_are_short_unless_they_say_why(tree: str) -> None:
    root = SOURCE_TREES[tree]
    long = []
    for p in _modules(root):
        text = p.read_text()
        if text.count("\n") > MAX_LINES:
            doc = ast_docstring(text)
            if "Long module:" not in doc:
                long.append(f"{_rel(p, root)} ({text.count(chr(10))} lines)")
    assert not long, f"over {MAX_LINES} lines without 'Long module:' in the docstring: {long}"


def ast_docstring(text: str) -> str:
    import ast

    return ast.get_docstring(ast.parse(text)) or ""


def test_ci_lints_before_testing() -> None:
    steps = [
        line.strip()
        for line in (ROOT / ".ci/run").read_text().splitlines()
        if line.startswith("make ")
    ]
    assert steps == ["make lint", "make test"]
    lint = (ROOT / "Makefile").read_text().split("\nlint:", 1)[1].split("\n\n", 1)[0]
    for step in ("ruff format --check", "ruff check", "mypy", "runtime_pins"):
        assert step in lint, f"make lint does not run {step}"
    hooks = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    assert {r["repo"] for r in hooks["repos"]} == {"local"}, "pre-commit downloads nothing"
