#!/usr/bin/env bash
# The single-node Kubernetes cluster of dev/cluster, as plain processes with their state
# under .run/cluster/.
#
#   dev/cluster/cluster.sh check     the machine checks only (exit 3: a machine limitation)
#   dev/cluster/cluster.sh prepare   install the packages, build binaries and images
#   dev/cluster/cluster.sh up        prepare, then start everything and wait for the node
#                                    and cluster DNS to be Ready (idempotent)
#   dev/cluster/cluster.sh down      stop the pods, every process and clean the host up
#   dev/cluster/cluster.sh status    what runs
#   dev/cluster/cluster.sh volumes   make sure enough hostPath PersistentVolumes are free
#   dev/cluster/cluster.sh env       print KUBECONFIG=... for the shell
#
# Processes (logs in .run/cluster/logs/, pids in .run/cluster/pids/):
#   containerd      Debian's, own config/root/state/socket under .run/cluster/containerd
#   control-plane   dev/testenv's herald-testenv: etcd, kube-apiserver (0.0.0.0:$API_PORT,
#                   advertised on the node IP), kube-controller-manager (node CIDRs)
#   kubelet, kube-scheduler, kube-proxy (iptables mode): herald-node (dev/cluster/node)
#   kube-router     NetworkPolicy enforcement only (iptables + ipset)
# and, in the cluster, CoreDNS (kube-system/coredns, Service kube-dns at $DNS_SERVICE_IP).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# 6443: the port the chart's NetworkPolicy lets the operator reach (kubeAPIServer.ports).
API_PORT="${HERALD_CLUSTER_API_PORT:-6443}"
NODE_NAME=herald-node
LOGS="$RUN_DIR/logs"
PIDS="$RUN_DIR/pids"
KUBECONFIG_FILE="$RUN_DIR/kubeconfig"
SOCK="$RUN_DIR/containerd/containerd.sock"
BIN="$RUN_DIR/bin"
PV_COUNT="${HERALD_CLUSTER_PVS:-8}"
CONTAINERD_ROOT="$CACHE_DIR/containerd"
kubectl() { "$REPO_ROOT/.run/bin/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

# ---- machine checks --------------------------------------------------------------------

# limitation MESSAGE: this machine cannot run the node; recorded for the tests, exit 3.
limitation() {
  mkdir -p "$RUN_DIR"
  echo "$*" >"$RUN_DIR/unsupported"
  printf 'cluster: machine limitation: %s\n' "$*" >&2
  exit 3
}

check_machine() {
  rm -f "$RUN_DIR/unsupported"
  [[ "$(uname -s)/$(uname -m)" == Linux/x86_64 ]] || limitation "needs Linux x86_64, this is $(uname -s)/$(uname -m)"
  [[ "$(id -u)" == 0 ]] || limitation "needs root (containerd, runc, iptables, mounts)"
  command -v apt-get >/dev/null || limitation "needs Debian/apt for containerd, runc and the CNI plugins"
  local c
  if [[ "$(stat -fc %T /sys/fs/cgroup)" == cgroup2fs ]]; then
    CGROUP_VERSION=2
  else
    CGROUP_VERSION=1
    for c in cpu cpuacct cpuset memory pids devices freezer; do
      grep -qw "$c" <(awk '$3 == "cgroup" { print $4 }' /proc/mounts | tr ',' ' ') \
        || limitation "cgroup v1 controller '$c' is not mounted under /sys/fs/cgroup"
    done
    [[ -w /sys/fs/cgroup/memory ]] || limitation "/sys/fs/cgroup is read-only"
  fi
  [[ -d /proc/sys/net/bridge ]] || limitation "the kernel has no bridge netfilter (br_netfilter); modprobe br_netfilter"
  grep -qw overlay /proc/filesystems || limitation "the kernel has no overlay filesystem"
  (( ${#SOCK} < 100 )) || limitation "the clone's path is too long for containerd's socket ($SOCK)"
}

# The kernel settings the node needs (not persistent: set at every up).
#   net.ipv4.ip_forward=1                     pods reach Services and each other through the host
#   net.bridge.bridge-nf-call-iptables=1      bridged pod-to-pod traffic passes iptables
#                                             (kube-proxy's Service rules, NetworkPolicies)
#   net.bridge.bridge-nf-call-ip6tables=1
# Swap is not turned off: the kubelet runs with failSwapOn: false.
set_sysctls() {
  local kv
  for kv in net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1; do
    local k="${kv%%=*}"
    echo "${kv#*=}" >"/proc/sys/${k//.//}" 2>/dev/null || sysctl -qw "$kv" \
      || limitation "cannot set sysctl $kv"
  done
}

node_ip() {
  local ip
  ip="$(ip -4 route get 1.1.1.1 2>/dev/null | awk '{ for (i = 1; i < NF; i++) if ($i == "src") { print $(i + 1); exit } }')"
  [[ -n "$ip" ]] || ip="$(ip -4 -o addr show scope global | awk '{ split($4, a, "/"); print a[1]; exit }')"
  [[ -n "$ip" ]] || limitation "no IPv4 address for the node (no default route, no global address)"
  echo "$ip"
}

# ---- processes -------------------------------------------------------------------------

running() { local p; p="$(cat "$PIDS/$1" 2>/dev/null)" && [[ -n "$p" ]] && kill -0 "$p" 2>/dev/null; }

# start NAME CMD...: in its own session, output in logs/NAME.log.
start() {
  local name="$1"; shift
  if running "$name"; then return 0; fi
  mkdir -p "$LOGS" "$PIDS"
  echo "=== $(date -Is) $*" >>"$LOGS/$name.log"
  setsid "$@" </dev/null >>"$LOGS/$name.log" 2>&1 &
  echo $! >"$PIDS/$name"
}

# stop NAME [SECONDS]: SIGTERM, then SIGKILL after SECONDS (default 20).
stop() {
  local name="$1" wait="${2:-20}" p i
  p="$(cat "$PIDS/$name" 2>/dev/null)" || return 0
  if [[ -n "$p" ]] && kill -0 "$p" 2>/dev/null; then
    kill -TERM "$p" 2>/dev/null || true
    for ((i = 0; i < wait * 10; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$p" 2>/dev/null; then
      log "$name did not stop in ${wait}s: SIGKILL"
      kill -KILL "$p" 2>/dev/null || true
    fi
  fi
  rm -f "$PIDS/$name"
}

# wait_for WHAT SECONDS CMD...: until CMD succeeds.
wait_for() {
  local what="$1" secs="$2" i; shift 2
  for ((i = 0; i < secs * 2; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  return 1
}

fail_with_log() {
  local name="$1"; shift
  echo "---- last lines of $LOGS/$name.log" >&2
  tail -25 "$LOGS/$name.log" >&2 || true
  echo "---- df -h" >&2
  df -h "$RUN_DIR" "$CACHE_DIR" >&2 2>/dev/null || true
  die "$*"
}

# The kubelet evicts every pod when the disk under its state or containerd's store has
# less than 1 GiB free (evictionHard below): refuse to start so close to that, with the
# numbers, instead of a cluster whose pods are evicted and recreated while the tests wait.
MIN_FREE_GIB="${HERALD_CLUSTER_MIN_FREE_GIB:-3}"
check_disk() {
  local dir avail
  for dir in "$RUN_DIR" "$CACHE_DIR"; do
    mkdir -p "$dir"
    avail="$(df -Pk "$dir" | awk 'NR == 2 { print int($4 / 1048576) }')"
    if (( avail < MIN_FREE_GIB )); then
      df -h "$RUN_DIR" "$CACHE_DIR" >&2 || true
      die "only ${avail} GiB free under $dir: the node needs at least $MIN_FREE_GIB GiB (HERALD_CLUSTER_MIN_FREE_GIB) above the kubelet's eviction threshold of 1 GiB"
    fi
  done
}

# ---- configuration ---------------------------------------------------------------------

# has_cap N: this process has capability N in its effective set.
has_cap() {
  local eff; eff="$(awk '/^CapEff:/ { print $2 }' /proc/self/status)"
  (( (16#$eff >> $1) & 1 ))
}

# write_if_changed FILE: stdin into FILE, only when it differs. kube-proxy exits (to be
# restarted) whenever its config file is written, even with the same content, so a
# second `up` beside a running node must leave the files alone.
write_if_changed() {
  local tmp="$1.new.$$"
  cat >"$tmp"
  if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv -f "$tmp" "$1"; fi
}

write_configs() {
  local ip="$1"
  source "$RUN_DIR/images.env"
  mkdir -p "$RUN_DIR"/{containerd,cni/net.d,cni/ipam,kubelet,kubelet-pki,pod-logs,volumes}
  write_if_changed "$RUN_DIR/containerd/config.toml" <<TOML
# Written by dev/cluster/cluster.sh.
version = 2
# The store (images, their layers and snapshots) is outside the clone, like buildah's:
# images are imported once per machine, not once per clone or run (the tags are hashes
# of their inputs). The state (sockets, running containers' bundles) stays in the clone.
root = "$CONTAINERD_ROOT"
state = "$RUN_DIR/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$RUN_DIR/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$IMAGE_pause"
  disable_apparmor = true
  enable_selinux = false
  # Without CAP_SYS_RESOURCE (these VMs' root lacks it) no process may lower its
  # oom_score_adj, and runc fails with "failed to update /proc/self/oom_score_adj:
  # Permission denied": keep the containers' values at or above containerd's own.
  restrict_oom_score_adj = $(has_cap 24 && echo false || echo true)
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$RUN_DIR/cni/net.d"
TOML
  write_if_changed "$RUN_DIR/cni/net.d/10-herald.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "herald",
  "plugins": [
    {
      "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$RUN_DIR/cni/ipam",
        "ranges": [[{"subnet": "$NODE_POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
  # The pods' upstream resolvers (CoreDNS itself forwards nothing).
  grep -E '^(nameserver|search|options)' /etc/resolv.conf >"$RUN_DIR/resolv.conf" 2>/dev/null || true
  [[ -s "$RUN_DIR/resolv.conf" ]] || echo "nameserver 127.0.0.1" >"$RUN_DIR/resolv.conf"
  local cgroupv1=false
  [[ "$CGROUP_VERSION" == 1 ]] && cgroupv1=true
  write_if_changed "$RUN_DIR/kubelet/config.yaml" <<YAML
# Written by dev/cluster/cluster.sh.
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$SOCK
# No systemd here: cgroupfs, like containerd's runc (SystemdCgroup = false).
cgroupDriver: cgroupfs
# The VM has cgroup v1 (hybrid): Kubernetes 1.34 still runs on it when allowed.
failCgroupV1: false
failSwapOn: false
address: $ip
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
clusterDNS: [$DNS_SERVICE_IP]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: $RUN_DIR/resolv.conf
podLogsDir: $RUN_DIR/pod-logs
serializeImagePulls: false
# Every image here is built and loaded locally and can never be pulled again (the pause
# image included: containerd 1.6 does not report it as pinned): no image garbage
# collection at all (100 disables it).
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# Evict only when the disk is really about to be full, in absolute terms: the default
# percentages (10 % / 15 %) are 5-25 GB on these disks, reached by the rest of a cold
# test run beside the cluster, and every evicted pod is recreated by its ReplicaSet
# while the install waits. A full disk is reported by cluster.sh up and the tests (df,
# node conditions) instead.
evictionHard: {memory.available: 100Mi, nodefs.available: 1Gi, imagefs.available: 1Gi, nodefs.inodesFree: 1%, imagefs.inodesFree: 1%}
evictionPressureTransitionPeriod: 30s
rotateCertificates: false
serverTLSBootstrap: false
maxPods: 110
YAML
  write_if_changed "$RUN_DIR/kube-proxy.yaml" <<YAML
# Written by dev/cluster/cluster.sh.
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $KUBECONFIG_FILE}
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $CLUSTER_POD_CIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Leave the host's conntrack sysctls alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
}

# ---- up ----------------------------------------------------------------------------------

prepare() {
  check_machine
  bash "$CLUSTER_DIR/build.sh" all
  bash "$REPO_ROOT/dev/tools.sh" kube >/dev/null
  bash "$REPO_ROOT/dev/testenv/build.sh" >/dev/null
  bash "$CLUSTER_DIR/images.sh" build
}

up() {
  local t0=$SECONDS
  prepare
  check_disk
  set_sysctls
  local ip; ip="$(node_ip)"
  write_configs "$ip"

  # 1. containerd, then the images.
  start containerd containerd --config "$RUN_DIR/containerd/config.toml"
  wait_for containerd 30 ctr --address "$SOCK" version || fail_with_log containerd "containerd did not start"
  bash "$CLUSTER_DIR/images.sh" load

  # 2. The control plane (dev/testenv), reachable from the pods through the kubernetes
  # Service (10.0.0.1 -> $ip:$API_PORT); its serving certificate covers 10.0.0.1.
  if ! running control-plane; then
    : >"$RUN_DIR/control-plane.out"
    mkdir -p "$LOGS" "$PIDS"
    setsid "$REPO_ROOT/.run/bin/herald-testenv" --controllers --data-dir "$RUN_DIR/control-plane" \
      --kubeconfig "$KUBECONFIG_FILE" --port "$API_PORT" --bind-address 0.0.0.0 \
      --apiserver-arg="--advertise-address=$ip" --apiserver-arg=--endpoint-reconciler-type=lease \
      --apiserver-arg=--disable-admission-plugins= --apiserver-arg=--kubelet-preferred-address-types=InternalIP \
      --controller-manager-arg=--allocate-node-cidrs=true \
      --controller-manager-arg="--cluster-cidr=$CLUSTER_POD_CIDR" \
      --controller-manager-arg=--node-cidr-mask-size=24 \
      --controller-manager-arg="--service-cluster-ip-range=$SERVICE_CIDR" \
      </dev/null >"$RUN_DIR/control-plane.out" 2>>"$LOGS/control-plane.log" &
    echo $! >"$PIDS/control-plane"
  fi
  wait_for control-plane 120 grep -q "\"status\":\"ready\".*\"pid\":$(cat "$PIDS/control-plane")," "$RUN_DIR/control-plane.out" \
    || fail_with_log control-plane "the control plane did not become ready"

  # 3. The node.
  start kubelet "$BIN/herald-node" kubelet --config "$RUN_DIR/kubelet/config.yaml" \
    --kubeconfig "$KUBECONFIG_FILE" --root-dir "$RUN_DIR/kubelet" --cert-dir "$RUN_DIR/kubelet-pki" \
    --hostname-override "$NODE_NAME" --node-ip "$ip" -v 1
  start kube-scheduler "$BIN/herald-node" scheduler --kubeconfig "$KUBECONFIG_FILE" \
    --leader-elect=false --bind-address 127.0.0.1 --secure-port 10259
  start kube-proxy "$BIN/herald-node" proxy --config "$RUN_DIR/kube-proxy.yaml"
  wait_for node 90 bash -c "'$REPO_ROOT/.run/bin/kubectl' --kubeconfig '$KUBECONFIG_FILE' get node $NODE_NAME \
    -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True" \
    || fail_with_log kubelet "node $NODE_NAME did not become Ready"
  kubectl uncordon "$NODE_NAME" >/dev/null 2>&1 || true
  start kube-router "$BIN/kube-router" --kubeconfig "$KUBECONFIG_FILE" --hostname-override "$NODE_NAME" \
    --run-firewall=true --run-router=false --run-service-proxy=false --enable-cni=false \
    --service-cluster-ip-range "$SERVICE_CIDR" --health-port 20244 --metrics-port 0 -v 1
  wait_for kube-router 60 curl -fsS http://127.0.0.1:20244/healthz \
    || fail_with_log kube-router "kube-router (NetworkPolicy controller) did not become healthy"

  # 4. Cluster DNS and the volumes.
  sed -e "s#@IMAGE@#$IMAGE_coredns#" -e "s#@DNS_IP@#$DNS_SERVICE_IP#" "$CLUSTER_DIR/manifests/coredns.yaml" \
    | kubectl apply -f - >/dev/null
  volumes
  kubectl -n kube-system rollout status deploy/coredns --timeout=120s >/dev/null \
    || { kubectl -n kube-system get pods -o wide >&2; kubectl -n kube-system describe pods -l k8s-app=kube-dns | tail -20 >&2; die "CoreDNS did not become ready"; }

  {
    echo "KUBECONFIG=$KUBECONFIG_FILE"
    echo "NODE_NAME=$NODE_NAME"
    echo "NODE_IP=$ip"
    echo "API_SERVER=https://127.0.0.1:$API_PORT"
  } >"$RUN_DIR/cluster.env"
  log "cluster is up in $((SECONDS - t0))s: KUBECONFIG=$KUBECONFIG_FILE (node $NODE_NAME, $ip)"
}

# Static hostPath PersistentVolumes (storage class herald-local) for the StatefulSets:
# released ones are wiped and made available again.
volumes() {
  local pv phase
  while read -r pv phase; do
    [[ "$phase" == Released || "$phase" == Failed ]] || continue
    kubectl delete pv "$pv" --wait=false >/dev/null 2>&1 || true
    rm -rf --one-file-system "$RUN_DIR/volumes/$pv"
  done < <(kubectl get pv -l herald.io/cluster-volume=true -o jsonpath='{range .items[*]}{.metadata.name} {.status.phase}{"\n"}{end}')
  local avail i=0
  avail="$(kubectl get pv -l herald.io/cluster-volume=true -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}' | grep -c '^Available' || true)"
  while (( avail < PV_COUNT )); do
    pv="herald-pv-$(date +%s%N | tail -c 9)$i"; i=$((i + 1))
    mkdir -p "$RUN_DIR/volumes/$pv"
    chmod 0777 "$RUN_DIR/volumes/$pv"   # hostPath ignores fsGroup: any pod user may write
    kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: PersistentVolume
metadata:
  name: $pv
  labels: {herald.io/cluster-volume: "true"}
spec:
  storageClassName: herald-local
  capacity: {storage: 20Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  hostPath: {path: $RUN_DIR/volumes/$pv, type: Directory}
YAML
    avail=$((avail + 1))
  done
  kubectl get storageclass herald-local >/dev/null 2>&1 || kubectl apply -f - >/dev/null <<YAML
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: herald-local
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: Immediate
reclaimPolicy: Retain
YAML
}

# ---- down --------------------------------------------------------------------------------

tasks() { ctr --address "$SOCK" -n k8s.io tasks ls -q 2>/dev/null; }

down() {
  local t0=$SECONDS
  # 1. No new pods; the kubelet stops the running ones (and tears down their networks).
  stop kube-scheduler
  if running kubelet && running control-plane; then
    kubectl delete pods -A --field-selector "spec.nodeName=$NODE_NAME" --wait=false \
      --grace-period=5 >/dev/null 2>&1 || true
    wait_for "pods to stop" 30 bash -c "[[ -z \"\$(ctr --address '$SOCK' -n k8s.io tasks ls -q 2>/dev/null)\" ]]" \
      || log "some containers still run after 30s: killing them"
  fi
  stop kube-router
  stop kube-proxy
  stop kubelet
  # 2. Whatever still runs in containerd.
  if running containerd; then
    local t
    for t in $(tasks); do ctr --address "$SOCK" -n k8s.io tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true; done
    sleep 1
    for t in $(tasks); do ctr --address "$SOCK" -n k8s.io tasks delete -f "$t" >/dev/null 2>&1 || true; done
  fi
  stop control-plane 30
  stop containerd
  cleanup_host
  log "cluster is down in $((SECONDS - t0))s"
}

# Undo what the node did to the host: iptables chains, the bridge, network namespaces,
# mounts under .run/cluster and the kubepods cgroups.
cleanup_host() {
  [[ ! -x "$BIN/herald-node" ]] || "$BIN/herald-node" proxy --cleanup >/dev/null 2>&1 || true
  # kube-router's own --cleanup-config panics without a cluster: remove its chains and
  # ipsets here, and the kubelet's chains (rules jumping to them first, then the chains).
  local table rule chain set
  for table in filter nat mangle; do
    iptables -t "$table" -S 2>/dev/null | grep -E '^-A (INPUT|FORWARD|OUTPUT|PREROUTING|POSTROUTING) .*-j KUBE-((ROUTER|NWPLCY|POD-FW)-|FIREWALL$|KUBELET-CANARY$)' \
      | while read -r rule; do eval "iptables -t $table ${rule/-A/-D}" 2>/dev/null || true; done \
      || true   # no rule left: grep finds nothing (pipefail)
    for chain in $(iptables -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-((ROUTER|NWPLCY|POD-FW)-|FIREWALL$|KUBELET-CANARY$)/ { print $2 }'); do
      iptables -t "$table" -F "$chain" 2>/dev/null || true
    done
    for chain in $(iptables -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-((ROUTER|NWPLCY|POD-FW)-|FIREWALL$|KUBELET-CANARY$)/ { print $2 }'); do
      iptables -t "$table" -X "$chain" 2>/dev/null || true
    done
  done
  for set in $(ipset list -n 2>/dev/null | grep -E '^KUBE-'); do ipset destroy "$set" 2>/dev/null || true; done
  local m ns
  for ns in /run/netns/cni-*; do
    [[ -e "$ns" ]] || continue
    umount "$ns" 2>/dev/null || true; rm -f "$ns"
  done
  ip link del cni0 2>/dev/null || true
  for m in $(awk -v d="$RUN_DIR/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  local cg
  for cg in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods /sys/fs/cgroup/unified/kubepods; do
    [[ -d "$cg" ]] || continue
    find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  rm -rf "$RUN_DIR/cni/ipam"
}

status() {
  local name
  for name in containerd control-plane kubelet kube-scheduler kube-proxy kube-router; do
    if running "$name"; then echo "$name: running (pid $(cat "$PIDS/$name"))"; else echo "$name: stopped"; fi
  done
  if running control-plane; then kubectl get nodes -o wide 2>/dev/null || true; fi
}

case "${1:-}" in
  check) check_machine; echo "this machine can run the node (cgroup v$CGROUP_VERSION)" ;;
  prepare) prepare ;;
  up) up ;;
  down) down ;;
  status) status ;;
  volumes) volumes ;;
  env) cat "$RUN_DIR/cluster.env" ;;
  *) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
