#!/usr/bin/env bash
# Build dev/testenv into .run/bin/herald-testenv.
#
# Idempotent: does nothing when the binary is newer than every source file of
# this module (set HERALD_TESTENV_FORCE=1 to rebuild anyway). Uses the default
# Go build and module caches, so after the first (cold) build a rebuild only
# recompiles what changed. The cold build compiles kube-apiserver,
# kube-controller-manager and etcd: see README.md for how long that takes.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${HERALD_TESTENV_BIN:-$root/.run/bin/herald-testenv}"

if [[ -x "$out" && "${HERALD_TESTENV_FORCE:-0}" != 1 ]]; then
  newer="$(find "$here" -maxdepth 1 -type f \( -name '*.go' -o -name go.mod -o -name go.sum -o -name build.sh \) -newer "$out" -print -quit)"
  if [[ -z "$newer" ]]; then
    echo "herald-testenv is up to date: $out"
    exit 0
  fi
fi

if ! command -v go >/dev/null 2>&1; then
  export PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null 2>&1 || { echo "build.sh: Go is not installed (need Go >= 1.24)" >&2; exit 1; }

# The Kubernetes release this module builds, as pinned in go.mod.
kube_version="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }' "$here/go.mod")"
[[ -n "$kube_version" ]] || { echo "build.sh: k8s.io/kubernetes not found in go.mod" >&2; exit 1; }
major="${kube_version#v}"; major="${major%%.*}"
minor="${kube_version#v*.}"; minor="${minor%%.*}"

# Discovery (/version) reports these, and kubectl and helm read them.
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean"
done

mkdir -p "$(dirname "$out")"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT

echo "building herald-testenv (Kubernetes $kube_version) -> $out"
start=$SECONDS
(
  cd "$here"
  # providerless leaves out the legacy in-tree cloud-provider code.
  CGO_ENABLED=0 nice -n 10 go build -tags providerless -ldflags "$ldflags" -o "$tmp" .
)
mv -f "$tmp" "$out"
echo "built herald-testenv in $((SECONDS - start))s: $("$out" --version)"
