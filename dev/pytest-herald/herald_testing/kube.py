"""Fixtures for tests against a real Kubernetes control plane.

``kube_control_plane`` starts ``herald-testenv --controllers`` (built from ``dev/testenv``
by ``dev/testenv/build.sh``): an embedded etcd, kube-apiserver and
kube-controller-manager in one process, on free loopback ports, once per test session.
There is no kubelet, so Pods are created but never run.

Set ``HERALD_KUBECONFIG`` to a kubeconfig file to use an existing cluster instead.

``kube_namespace`` gives each test its own namespace; ``kube_tools`` gives the paths of
helm and kubectl installed by ``dev/tools.sh``.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

REPO_ROOT = Path(__file__).resolve().parents[3]
BIN_DIR = REPO_ROOT / ".run" / "bin"
TESTENV_BIN = BIN_DIR / "herald-testenv"
BUILD_SCRIPT = REPO_ROOT / "dev" / "testenv" / "build.sh"
TOOLS_SCRIPT = REPO_ROOT / "dev" / "tools.sh"

START_TIMEOUT = float(os.environ.get("HERALD_KUBE_START_TIMEOUT", "120"))
BUILD_TIMEOUT = float(os.environ.get("HERALD_KUBE_BUILD_TIMEOUT", "3600"))
LOG_TAIL_LINES = 60
T = TypeVar("T")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "kube: needs the Kubernetes test control plane")


@dataclass
class KubeControlPlane:
    """A running API server: where it is and how to talk to it."""

    kubeconfig: str
    server: str
    token: str
    version: str = ""
    controllers: bool = False
    data_dir: str | None = None
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def api_client(self) -> ApiClient:
        """A new ``kubernetes.client.ApiClient`` for this control plane (admin)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=self.kubeconfig)

    def env(self) -> dict[str, str]:
        """``os.environ`` with ``KUBECONFIG`` pointing here, for kubectl, helm, kopf."""
        return {**os.environ, "KUBECONFIG": self.kubeconfig}

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return _tail(self.log_path, lines)


@dataclass(frozen=True)
class KubeTools:
    """helm and kubectl binaries; ``run`` calls one against a kubeconfig."""

    helm: Path
    kubectl: Path

    def run(
        self,
        tool: str,
        *args: str,
        kubeconfig: str | None = None,
        input: str | None = None,
        check: bool = True,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        binary = {"helm": self.helm, "kubectl": self.kubectl}[tool]
        env = dict(os.environ)
        if kubeconfig is not None:
            env["KUBECONFIG"] = kubeconfig
        # helm keeps caches and config under $HOME; keep them out of the user's.
        env.setdefault("HELM_CACHE_HOME", str(REPO_ROOT / ".run" / "helm" / "cache"))
        env.setdefault("HELM_CONFIG_HOME", str(REPO_ROOT / ".run" / "helm" / "config"))
        env.setdefault("HELM_DATA_HOME", str(REPO_ROOT / ".run" / "helm" / "data"))
        proc = subprocess.run(  # noqa: S603 - fixed binaries, test-chosen args
            [str(binary), *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{tool} {' '.join(args)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc


def wait_until(
    predicate: Callable[[], T], timeout: float, *, interval: float = 0.25, what: str = "condition"
) -> T:
    """Call ``predicate`` until it returns something truthy and return that; fail the
    test after ``timeout`` seconds. Controllers act asynchronously: use this, not sleep."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def apply_crd(ext: Any, body: dict[str, Any]) -> None:
    """Create the CustomResourceDefinition ``body`` through ``ext`` (an
    ``ApiextensionsV1Api``), or replace the one of that name (``body`` then carries its
    ``resourceVersion``)."""
    from kubernetes import client

    name = body["metadata"]["name"]
    try:
        ext.create_custom_resource_definition(body)
    except client.ApiException as exc:
        if exc.status != 409:
            raise
        current = ext.read_custom_resource_definition(name)
        body["metadata"]["resourceVersion"] = current.metadata.resource_version
        ext.replace_custom_resource_definition(name, body)


def served(custom: Any, group: str, version: str, plural: str) -> bool:
    """Whether the API server serves ``plural`` of ``group/version`` yet (``custom``: a
    ``CustomObjectsApi``); a new CRD's resource can be missing from discovery a moment
    after the CRD is established."""
    from kubernetes import client

    try:
        custom.list_cluster_custom_object(group, version, plural)
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector (``matchLabels`` and ``matchExpressions``)
    selects these labels."""
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _tail(path: Path, lines: int) -> str:
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 64 * 1024))
        data = f.read().decode("utf-8", "replace")
    return "\n".join(data.splitlines()[-lines:])


def _run_script(script: Path, timeout: float) -> None:
    proc = subprocess.run(  # noqa: S603
        ["bash", str(script)],  # noqa: S607 - bash from PATH, like make
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{script.relative_to(REPO_ROOT)} failed ({proc.returncode}):\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )


def ensure_testenv_binary() -> Path:
    """Build herald-testenv if it is missing or older than its sources."""
    _run_script(BUILD_SCRIPT, BUILD_TIMEOUT)
    if not TESTENV_BIN.exists():
        raise RuntimeError(f"{BUILD_SCRIPT} did not produce {TESTENV_BIN}")
    return TESTENV_BIN


def start_control_plane(
    workdir: Path,
    *,
    controllers: bool = True,
    extra_args: Sequence[str] = (),
    timeout: float = START_TIMEOUT,
) -> KubeControlPlane:
    """Start herald-testenv in ``workdir`` and wait for its ready line."""
    binary = ensure_testenv_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "testenv.log"
    cmd = [
        str(binary),
        "--data-dir",
        str(workdir / "data"),
        "--kubeconfig",
        str(workdir / "kubeconfig"),
        "--exit-on-stdin-close",
        *(["--controllers"] if controllers else []),
        *extra_args,
    ]
    with log_path.open("wb") as log:
        # stdin stays open for the process's lifetime: if this Python process dies,
        # the pipe closes and herald-testenv shuts itself down.
        proc = subprocess.Popen(  # noqa: S603
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, cwd=workdir
        )
    lines: queue.Queue[bytes | None] = queue.Queue()

    def read_stdout() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read_stdout, name="herald-testenv-stdout", daemon=True).start()

    def fail(reason: str) -> RuntimeError:
        stop_process(proc)
        return RuntimeError(
            f"herald-testenv {reason}\ncommand: {' '.join(cmd)}\n"
            f"last lines of {log_path}:\n{_tail(log_path, LOG_TAIL_LINES)}"
        )

    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise fail(f"was not ready after {timeout:g}s")
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            continue
        if line is None:
            proc.wait(timeout=10)
            raise fail(f"exited with code {proc.returncode} before it was ready")
        try:
            info: dict[str, Any] = json.loads(line)
        except ValueError:
            continue
        if info.get("status") == "ready":
            break
    return KubeControlPlane(
        kubeconfig=info["kubeconfig"],
        server=info["server"],
        token=info["token"],
        version=info.get("version", ""),
        controllers=bool(info.get("controllers")),
        data_dir=info.get("data_dir"),
        log_path=log_path,
        process=proc,
    )


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass


def _existing_cluster(kubeconfig: str) -> KubeControlPlane:
    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    auth = (cfg.api_key or {}).get("authorization", "")
    with client.ApiClient(cfg) as api:
        info = client.VersionApi(api).get_code()
    return KubeControlPlane(
        kubeconfig=kubeconfig,
        server=cfg.host,
        token=auth.removeprefix("Bearer "),
        version=info.git_version,
        controllers=True,
    )


@pytest.fixture(scope="session")
def kube_control_plane(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[KubeControlPlane]:
    """A Kubernetes API server with controllers, shared by the whole session."""
    existing = os.environ.get("HERALD_KUBECONFIG")
    if existing:
        yield _existing_cluster(str(Path(existing).expanduser().resolve()))
        return
    plane = start_control_plane(tmp_path_factory.mktemp("kube"), controllers=True)
    try:
        yield plane
    finally:
        assert plane.process is not None
        stop_process(plane.process)


@pytest.fixture
def kube_namespace(kube_control_plane: KubeControlPlane) -> Iterator[str]:
    """A fresh namespace ``t-<random>``; deleted (without waiting) after the test."""
    from kubernetes import client

    name = f"t-{secrets.token_hex(4)}"
    with kube_control_plane.api_client() as api:
        core = client.CoreV1Api(api)
        core.create_namespace(
            client.V1Namespace(
                metadata=client.V1ObjectMeta(name=name, labels={"herald.test/namespace": "true"})
            )
        )
        try:
            yield name
        finally:
            try:
                core.delete_namespace(name, propagation_policy="Background")
            except client.ApiException as exc:
                if exc.status != 404:
                    raise


@pytest.fixture(scope="session")
def kube_tools() -> KubeTools:
    """helm and kubectl from ``.run/bin`` (``dev/tools.sh`` installs them if missing)."""
    helm, kubectl = BIN_DIR / "helm", BIN_DIR / "kubectl"
    if not (helm.exists() and kubectl.exists()):
        _run_script(TOOLS_SCRIPT, timeout=600)
    return KubeTools(helm=helm, kubectl=kubectl)
