# Shared settings and helpers of the dev/cluster scripts (sourced, not run).
# Pinned versions of everything the single-node cluster is made of live here.

# Debian packages of the node (bookworm).
CLUSTER_DEBS=(
  containerd=1.6.20~ds1-1+deb12u3
  runc=1.1.5+ds1-1+deb12u1
  containernetworking-plugins=1.1.1+ds1-3+b5
  buildah=1.28.2+ds1-3+deb12u1+b3
  debootstrap=1.0.128+nmu2+deb12u2
  iptables=1.8.9-2
  ipset=7.17-1
  conntrack=1:1.4.7-1+b2
)
# The root filesystem every Herald image starts from (PYTHON_BASE of herald-base).
ROOTFS_SUITE=bookworm
ROOTFS_PACKAGES=python3,python3-venv,ca-certificates

CLUSTER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$CLUSTER_DIR/../.." && pwd)"
RUN_DIR="$REPO_ROOT/.run/cluster"
# Heavy build results (binaries, the root filesystem, image archives) are kept outside
# the clone, keyed by their inputs, so a fresh clone on the same machine reuses them.
CACHE_DIR="${HERALD_CACHE_DIR:-$([[ "$(id -u)" == 0 ]] && echo /var/cache/herald || echo "$HOME/.cache/herald")}"

log() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'cluster: error: %s\n' "$*" >&2; exit 1; }

go_bin() {
  local go
  go="$(command -v go || true)"
  [[ -n "$go" || ! -x /usr/local/go/bin/go ]] || go=/usr/local/go/bin/go
  [[ -n "$go" ]] || die "Go is not installed (need Go >= 1.24)"
  echo "$go"
}

# key FILE... : a short hash of the given files' contents (and of extra words in $KEY_EXTRA).
key() {
  { for f in "$@"; do echo "== ${f##*/}"; cat "$f"; done; echo "${KEY_EXTRA:-}"; } | sha256sum | cut -c1-16
}

# debian_mirror [SUITE]: the Debian mirror apt already uses here for SUITE (default
# $ROOTFS_SUITE; e.g. bookworm-security), read from /etc/apt/sources.list and
# sources.list.d at run time.
debian_mirror() {
  local f suite="${1:-$ROOTFS_SUITE}"
  if [[ "$suite" == "$ROOTFS_SUITE" && -n "${HERALD_DEBIAN_MIRROR:-}" ]]; then echo "$HERALD_DEBIAN_MIRROR"; return; fi
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "$f" ]] || continue
    awk -v suite="$suite" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
      if ($(i + 1) == suite) { print $i; exit } }' "$f"
  done | head -1 | grep . && return
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    # deb822 stanzas: URIs + Suites containing the suite itself (not -security/-updates only).
    awk -v suite="$suite" 'BEGIN { RS = ""; FS = "\n" }
      { uris = ""; ok = 0; deb = 0
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^Types:/ && $i ~ /[[:space:]]deb([[:space:]]|$)/) deb = 1
          if ($i ~ /^URIs:/) { uris = $i; sub(/^URIs:[[:space:]]*/, "", uris); split(uris, u, /[[:space:]]+/); uris = u[1] }
          if ($i ~ /^Suites:/) { n = split($i, s, /[[:space:]]+/); for (j = 2; j <= n; j++) if (s[j] == suite) ok = 1 }
        }
        if (deb && ok && uris != "") { print uris; exit } }' "$f"
  done | head -1 | grep . && return
  return 1
}

# kube-router, the NetworkPolicy controller (firewall only: no routing, no service proxy),
# built from its own module at this version with its own go.mod and go.sum.
KUBE_ROUTER_MODULE=github.com/cloudnativelabs/kube-router/v2
KUBE_ROUTER_VERSION=v2.1.0

# Addresses of the cluster.
CLUSTER_POD_CIDR=10.244.0.0/16
NODE_POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.0.0.0/24
DNS_SERVICE_IP=10.0.0.10
CLUSTER_DOMAIN=cluster.local

# Debian packages inside the infrastructure images (installed with apt inside the build).
RABBITMQ_DEB_VERSION=3.10.8-1.1+deb12u1
REDIS_DEB_VERSION=5:7.0.15-1~deb12u10
# Herald's images, by the folder of their Dockerfile (folder name = image name = values key).
HERALD_IMAGES=(users:services/users notifications:services/notifications
  recommendations:services/recommendations scheduler:services/scheduler
  gateway:gateway operator:operator)
IMAGE_PREFIX=localhost/herald
