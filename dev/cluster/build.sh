#!/usr/bin/env bash
# Install the node's Debian packages and build its binaries.
#
#   dev/cluster/build.sh [debs|bins|all]      (default: all)
#
# debs: containerd, runc, CNI plugins, buildah, debootstrap, iptables, ipset, conntrack
#       (pinned in lib.sh), with apt, when a pinned version is not installed.
# bins: into $CACHE_DIR/bin/<name>-<key> (key: the sources, go.mod/go.sum, Go version),
#       then copied to .run/cluster/bin/:
#   herald-node     kubelet, kube-scheduler, kube-proxy (dev/cluster/node, same
#                   k8s.io/kubernetes version and build flags as dev/testenv, so the
#                   Go build cache of the control plane is shared)
#   herald-coredns  CoreDNS with the cluster's plugins (dev/cluster/coredns)
#   herald-pause    the pod sandbox binary (dev/pause)
#   kube-router     the NetworkPolicy controller, from its module (lib.sh)
# Go builds run under nice; a cached binary is reused at once.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
what="${1:-all}"

install_debs() {
  local missing=() p name want have
  for p in "${CLUSTER_DEBS[@]}"; do
    name="${p%%=*}"; want="${p#*=}"
    have="$(dpkg-query -W -f='${Version}' "$name" 2>/dev/null || true)"
    [[ "$have" == "$want" ]] || missing+=("$p")
  done
  if [[ ${#missing[@]} -eq 0 ]]; then log "node packages are installed"; return 0; fi
  command -v apt-get >/dev/null || die "need apt-get to install ${missing[*]}"
  local sudo=""
  [[ "$(id -u)" == 0 ]] || sudo="sudo"
  log "installing ${missing[*]} (apt)"
  local start=$SECONDS
  if ! apt-cache show "${missing[0]}" >/dev/null 2>&1; then
    $sudo apt-get update -q -o DPkg::Lock::Timeout=300 >/dev/null
  fi
  # No service of these packages is started: dev/cluster/cluster.sh runs its own.
  RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends \
    -o DPkg::Lock::Timeout=300 "${missing[@]}" >/dev/null
  log "installed the node packages in $((SECONDS - start))s"
}

# build NAME KEY DIR GO-BUILD-ARGS... : go build in DIR into the cache unless there.
build() {
  local name="$1" k="$2" dir="$3"; shift 3
  local out="$CACHE_DIR/bin/$name-$k"
  mkdir -p "$CACHE_DIR/bin" "$RUN_DIR/bin"
  if [[ ! -x "$out" ]]; then
    log "building $name (a first build on a machine takes minutes)"
    local start=$SECONDS tmp="$out.tmp.$$"
    (cd "$dir" && CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" nice -n 10 "$GO" build -o "$tmp" "$@") \
      || { rm -f "$tmp"; die "building $name failed"; }
    mv -f "$tmp" "$out"
    log "built $name in $((SECONDS - start))s"
  fi
  if ! cmp -s "$out" "$RUN_DIR/bin/$name"; then
    cp -f "$out" "$RUN_DIR/bin/.$name.tmp" && mv -f "$RUN_DIR/bin/.$name.tmp" "$RUN_DIR/bin/$name"
  fi
}

build_bins() {
  GO="$(go_bin)"
  local gov; gov="$("$GO" env GOVERSION)"
  local kube_version major minor ldflags pkg
  kube_version="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }' "$CLUSTER_DIR/node/go.mod")"
  local tv; tv="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }' "$REPO_ROOT/dev/testenv/go.mod")"
  [[ "$kube_version" == "$tv" ]] || die "dev/cluster/node builds Kubernetes $kube_version but dev/testenv $tv: keep them equal"
  major="${kube_version#v}"; major="${major%%.*}"
  minor="${kube_version#v*.}"; minor="${minor%%.*}"
  # Exactly dev/testenv/build.sh's flags, so the compiled Kubernetes packages are shared.
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean"
  done

  build herald-pause "$(KEY_EXTRA=$gov key "$REPO_ROOT"/dev/pause/{main.go,go.mod})" \
    "$REPO_ROOT/dev/pause" -trimpath -ldflags "-s -w" .
  build herald-node "$(KEY_EXTRA="$gov $ldflags" key "$CLUSTER_DIR"/node/{main.go,go.mod,go.sum})" \
    "$CLUSTER_DIR/node" -tags providerless -ldflags "$ldflags" .
  build herald-coredns "$(KEY_EXTRA=$gov key "$CLUSTER_DIR"/coredns/{main.go,go.mod,go.sum})" \
    "$CLUSTER_DIR/coredns" -tags providerless -ldflags "-s -w" .
  # kube-router builds inside its own (read-only, checksum-verified) module directory,
  # with exactly the dependency versions of its go.mod/go.sum.
  local kr="$KUBE_ROUTER_MODULE@$KUBE_ROUTER_VERSION" krdir
  krdir="$("$GO" env GOMODCACHE)/$kr"
  [[ -f "$krdir/go.mod" ]] || (mkdir -p "$CACHE_DIR" && cd "$CACHE_DIR" && GOFLAGS= "$GO" mod download "$kr") \
    || die "go mod download $kr failed"
  build kube-router "$(KEY_EXTRA="$gov $kr" key)" "$krdir" \
    -ldflags "-s -w" ./cmd/kube-router
}

case "$what" in
  debs) install_debs ;;
  bins) build_bins ;;
  all) install_debs; build_bins ;;
  *) die "usage: dev/cluster/build.sh [debs|bins|all]" ;;
esac
