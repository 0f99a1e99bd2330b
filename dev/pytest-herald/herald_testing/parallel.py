"""Which tests share a pytest-xdist worker when the suite runs in parallel.

``make test`` runs the suite with ``-n <workers> --dist loadgroup``: tests without an
``xdist_group`` mark go to whichever worker is free, tests with the same group run on one
worker, one after another, in collection order. Each worker is its own pytest session
(its own session fixtures, its own ``tmp_path_factory`` base), so a group is what keeps a
costly fixture started once rather than once per worker. This plugin gives the groups
(an explicit ``xdist_group`` mark is left as it is):

* every test using the session's running Herald (``herald``, ``tests/e2e``): one group,
  so Herald is started once and the tests keep their file order (``test_zz_outage``
  stops a service and must stay last);
* every test using the Kubernetes test control plane (``kube_control_plane``): one
  group, so one control plane is started;
* otherwise, a test using a module-scoped fixture is grouped with its module, so that
  fixture (a second Herald, a live Prometheus, ...) is set up once;
* every other test is scheduled on its own.

The groups that take longest are handed out first (``WEIGHTS``, measured seconds on a
2-core machine, only their order matters), so no long group starts last and becomes the
tail of the run; ``--no-loadscope-reorder`` keeps that order. Without xdist, or with
``-n 0``, nothing changes.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]

# Session fixtures that start something costly, by where they are defined (a fixture of
# the same name elsewhere is another fixture), and the group of the tests using them.
SESSION_GROUPS = {
    ("tests/e2e/conftest.py", "herald"): "e2e-herald",
    ("herald_testing.kube", "kube_control_plane"): "kube",
}

# Rough length of the longest groups, used only to start them first.
WEIGHTS = {
    "e2e-herald": 400,
    "tests/e2e/test_faults.py": 300,
    "kube": 250,
    "tests/e2e/test_server_restarts.py": 200,
}


def _where(fixturedef: Any) -> str:
    """The conftest path (relative to the root) or the plugin module defining a fixture."""
    module = getattr(fixturedef.func, "__module__", "") or ""
    if module.startswith("herald_testing."):
        return module
    path = Path(inspect.getsourcefile(fixturedef.func) or "")
    with contextlib.suppress(ValueError):
        return path.relative_to(ROOT).as_posix()
    return str(path)


def group_of(item: pytest.Item) -> str | None:
    """The ``xdist_group`` this test belongs to (None: scheduled on its own)."""
    mark = item.get_closest_marker("xdist_group")
    if mark is not None:
        return str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    names = getattr(item, "fixturenames", ())
    module_scoped = False
    for name in names:
        defs = info.name2fixturedefs.get(name)
        if not defs:
            continue
        fixturedef = defs[-1]  # the one this test gets
        if fixturedef.scope == "session":
            group = SESSION_GROUPS.get((_where(fixturedef), name))
            if group is not None:
                return group
        elif fixturedef.scope == "module":
            module_scoped = True
    return item.nodeid.split("::", 1)[0] if module_scoped else None


def _grouping(config: pytest.Config) -> bool:
    """True in the controller and the workers of a ``--dist loadgroup`` run (xdist runs
    its workers with ``dist`` "no" and tells them with ``loadgroup``)."""
    return config.getoption("dist", "no") == "loadgroup" or bool(
        config.getoption("loadgroup", False)
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Before xdist's own hook, which appends each test's group to its id.
    if not _grouping(config):
        return
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            group = group_of(item)
            if group is not None:
                item.add_marker(pytest.mark.xdist_group(group))


class _LongestFirst:
    @pytest.hookimpl(wrapper=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> Iterator[None]:
        """After every other plugin's reordering, a stable sort: the longest groups
        first, everything else in collection order (every worker sorts the same way)."""
        yield
        for item in items:
            _carry_group_in_id(item)
        weight = {id(item): WEIGHTS.get(group_of(item) or "", 0) for item in items}
        items.sort(key=lambda item: -weight[id(item)])


def _carry_group_in_id(item: pytest.Item) -> None:
    """Make the test's id end in ``@<group>``, which is how the controller's loadgroup
    scheduler sees the group. xdist (3.8) writes the suffix to ``item._nodeid``, which
    pytest 9 no longer reads (``nodeid`` comes from ``item._id``), so without this every
    test would be scheduled on its own."""
    group = group_of(item)
    if group is None or item.nodeid.endswith(f"@{group}"):
        return
    from _pytest.nodeid import NodeId

    item._id = NodeId.parse(f"{item.nodeid}@{group}")


def pytest_configure(config: pytest.Config) -> None:
    if _grouping(config):
        config.pluginmanager.register(_LongestFirst(), "herald-longest-first")
