#!/usr/bin/env bash
# Build every image of the single-node cluster without a Docker engine, and load them
# into containerd.
#
#   dev/cluster/images.sh build      build what is missing; writes .run/cluster/images.env
#                                    and .run/cluster/values-images.yaml (the chart's tags)
#   dev/cluster/images.sh load       import the built images into containerd's k8s.io
#                                    namespace (the cluster's containerd must be running)
#
# Images (tag = a hash of their inputs, so a changed input builds a new tag):
#   localhost/herald/debian-python   the debootstrap root filesystem (rootfs.sh)
#   localhost/herald/base            services/common/Dockerfile, PYTHON_BASE = the above
#   localhost/herald/<component>     each component's Dockerfile, BASE = herald-base
#   localhost/herald/{mongodb,rabbitmq,redis}  dev/cluster/images/* (FerretDB, Debian packages)
#   localhost/herald/{pause,coredns} static binaries alone (dev/pause, dev/cluster/coredns)
# Built with buildah (chroot isolation, host network: RUN steps reach the Debian mirror
# and PyPI like the host does; the host's CA bundle and a pip.conf pointing at it are
# mounted for the build only). Images live in buildah's storage and, once loaded, in
# containerd's store ($CACHE_DIR/containerd), both outside the clone; nothing is pulled
# from a registry.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# files_key DIR... : hash of every source file under the folders (what .dockerignore sends).
files_key() {
  find "$@" -type f ! -path '*/__pycache__/*' ! -path '*.egg-info/*' ! -path '*/tests/*' \
    ! -path '*/.pytest_cache/*' ! -path '*/.mypy_cache/*' ! -path '*/build/*' ! -path '*/dist/*' \
    -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16
}

have_image() { buildah inspect --type image "$1" >/dev/null 2>&1; }

# Mounted into every RUN step: the host's CA bundle (a TLS-inspecting proxy's CA is in
# it) and a pip.conf using it.
build_mounts() {
  local conf="$RUN_DIR/build/pip.conf"
  mkdir -p "$RUN_DIR/build"
  {
    echo "[global]"
    echo "cert = /etc/ssl/certs/ca-certificates.crt"
    [[ -z "${PIP_INDEX_URL:-}" ]] || echo "index-url = $PIP_INDEX_URL"
    echo "timeout = ${PIP_DEFAULT_TIMEOUT:-180}"
  } >"$conf"
  MOUNTS=(--volume "$conf:/etc/pip.conf:ro")
  [[ ! -f /etc/ssl/certs/ca-certificates.crt ]] \
    || MOUNTS+=(--volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
}

# bud IMAGE DOCKERFILE CONTEXT [buildah bud args...]
bud() {
  local image="$1" file="$2" ctx="$3"; shift 3
  if have_image "$image"; then return 0; fi
  log "building $image"
  local start=$SECONDS logf="$RUN_DIR/build/$(basename "${image%%:*}").log"
  if ! nice -n 10 buildah bud --isolation chroot --network host --layers --format docker \
      "${MOUNTS[@]}" -f "$file" -t "$image" "$@" "$ctx" >"$logf" 2>&1; then
    tail -30 "$logf" >&2
    die "building $image failed (log: $logf)"
  fi
  log "built $image in $((SECONDS - start))s"
}

build_all() {
  command -v buildah >/dev/null || die "buildah is not installed (dev/cluster/build.sh debs)"
  [[ -x "$RUN_DIR/bin/herald-pause" && -x "$RUN_DIR/bin/herald-coredns" ]] \
    || die "build the binaries first (dev/cluster/build.sh bins)"
  local ferret="$REPO_ROOT/.run/bin/herald-ferretdb"
  [[ -x "$ferret" ]] || bash "$REPO_ROOT/dev/ferretdb/build.sh"
  build_mounts
  local start=$SECONDS
  local -A tags=()

  # 1. The Debian root filesystem as an image.
  local rootfs k
  rootfs="$(bash "$CLUSTER_DIR/rootfs.sh")"
  k="$(basename "$rootfs" .tar)"; k="${k##*-}"
  local pybase="$IMAGE_PREFIX/debian-python:$k"
  if ! have_image "$pybase"; then
    log "importing the root filesystem as $pybase"
    local c; c="$(buildah from scratch)"
    buildah add --quiet "$c" "$rootfs" / >/dev/null
    buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      --env LANG=C.UTF-8 --cmd /bin/bash "$c"
    buildah commit --quiet --format docker "$c" "$pybase" >/dev/null
    buildah rm "$c" >/dev/null
  fi
  tags[debian-python]="$k"

  # 2. herald-base and the components.
  local root="$REPO_ROOT" basek
  basek="$(KEY_EXTRA="$k" key "$root/services/common/Dockerfile" "$root/requirements-runtime.lock")"
  basek="$(echo "$basek $(files_key "$root/services/common")" | sha256sum | cut -c1-16)"
  bud "$IMAGE_PREFIX/base:$basek" "$root/services/common/Dockerfile" "$root" \
    --build-arg "PYTHON_BASE=$pybase"
  tags[base]="$basek"
  # GraphiQL's files go into the gateway image (gateway/Dockerfile copies them).
  python3 "$root/gateway/graphiql/install.py"
  local entry name dir ck
  for entry in "${HERALD_IMAGES[@]}"; do
    name="${entry%%:*}"; dir="${entry#*:}"
    ck="$(echo "$basek $(files_key "$root/$dir")" | sha256sum | cut -c1-16)"
    bud "$IMAGE_PREFIX/$name:$ck" "$root/$dir/Dockerfile" "$root" \
      --build-arg "BASE=$IMAGE_PREFIX/base:$basek"
    tags[$name]="$ck"
  done

  # 3. Infrastructure, pause and DNS, each from a small prepared context.
  local ctx="$RUN_DIR/build/ctx"
  rm -rf "$ctx"; mkdir -p "$ctx"/{mongodb,pause,coredns}
  cp "$ferret" "$CLUSTER_DIR/images/mongodb/entrypoint.sh" "$ctx/mongodb/"
  cp "$RUN_DIR/bin/herald-pause" "$ctx/pause/"
  cp "$RUN_DIR/bin/herald-coredns" "$ctx/coredns/"
  local ik
  ik="$(KEY_EXTRA="$k" key "$CLUSTER_DIR/images/mongodb/Dockerfile" "$ctx/mongodb/entrypoint.sh" "$ferret")"
  bud "$IMAGE_PREFIX/mongodb:$ik" "$CLUSTER_DIR/images/mongodb/Dockerfile" "$ctx/mongodb" \
    --build-arg "BASE=$pybase"
  tags[mongodb]="$ik"
  ik="$(KEY_EXTRA="$k $RABBITMQ_DEB_VERSION" key "$CLUSTER_DIR/images/rabbitmq/Dockerfile")"
  bud "$IMAGE_PREFIX/rabbitmq:$ik" "$CLUSTER_DIR/images/rabbitmq/Dockerfile" "$ctx" \
    --build-arg "BASE=$pybase" --build-arg "RABBITMQ_VERSION=$RABBITMQ_DEB_VERSION"
  tags[rabbitmq]="$ik"
  ik="$(KEY_EXTRA="$k $REDIS_DEB_VERSION" key "$CLUSTER_DIR/images/redis/Dockerfile")"
  bud "$IMAGE_PREFIX/redis:$ik" "$CLUSTER_DIR/images/redis/Dockerfile" "$ctx" \
    --build-arg "BASE=$pybase" --build-arg "REDIS_VERSION=$REDIS_DEB_VERSION"
  tags[redis]="$ik"
  ik="$(key "$REPO_ROOT/dev/pause/Dockerfile" "$ctx/pause/herald-pause")"
  bud "$IMAGE_PREFIX/pause:$ik" "$REPO_ROOT/dev/pause/Dockerfile" "$ctx/pause"
  tags[pause]="$ik"
  ik="$(key "$CLUSTER_DIR/images/coredns/Dockerfile" "$ctx/coredns/herald-coredns")"
  bud "$IMAGE_PREFIX/coredns:$ik" "$CLUSTER_DIR/images/coredns/Dockerfile" "$ctx/coredns"
  tags[coredns]="$ik"

  # What the cluster scripts and the chart use.
  {
    for name in "${!tags[@]}"; do
      echo "IMAGE_${name//-/_}=$IMAGE_PREFIX/$name:${tags[$name]}"
    done | sort
  } >"$RUN_DIR/images.env.tmp"
  mv -f "$RUN_DIR/images.env.tmp" "$RUN_DIR/images.env"
  {
    echo "# Written by dev/cluster/images.sh: the locally built images (never pulled)."
    echo "global:"
    echo "  imageRegistry: localhost"
    echo "  imagePullPolicy: Never"
    for entry in "${HERALD_IMAGES[@]}"; do
      name="${entry%%:*}"
      printf '%s:\n  image:\n    tag: "%s"\n' "$name" "${tags[$name]}"
    done
    for name in mongodb rabbitmq redis; do
      printf '%s:\n  image:\n    repository: %s/%s\n    tag: "%s"\n    pullPolicy: Never\n' \
        "$name" "$IMAGE_PREFIX" "$name" "${tags[$name]}"
    done
  } >"$RUN_DIR/values-images.yaml"
  log "images ready in $((SECONDS - start))s"
}

# containerd's store is outside the clone ($CACHE_DIR/containerd, see cluster.sh): an
# image loaded once stays loaded for every later run and clone. An image goes from
# buildah's storage to containerd through a docker-archive file that exists only for its
# import (one image at a time), so no second copy of every image stays on the disk.
load_all() {
  [[ -f "$RUN_DIR/images.env" ]] || die "no $RUN_DIR/images.env: run dev/cluster/images.sh build"
  local sock="$RUN_DIR/containerd/containerd.sock" image have want=()
  have="$(ctr --address "$sock" -n k8s.io images ls -q 2>/dev/null)" \
    || die "containerd is not running at $sock"
  mkdir -p "$CACHE_DIR/tmp"
  while IFS='=' read -r _ image; do
    [[ "$image" == */debian-python:* || "$image" == */base:* ]] && continue
    want+=("$image")
    grep -qxF "$image" <<<"$have" && continue
    local start=$SECONDS tar
    tar="$CACHE_DIR/tmp/import-$$-$(basename "${image%%:*}").tar"
    rm -f "$tar"
    buildah push -q "$image" "docker-archive:$tar:$image" >/dev/null \
      || { rm -f "$tar"; die "buildah push $image (docker-archive) failed"; }
    if ! ctr --address "$sock" -n k8s.io images import "$tar" >/dev/null; then
      rm -f "$tar"; die "ctr images import of $image failed"
    fi
    rm -f "$tar"
    log "loaded $image into containerd in $((SECONDS - start))s"
  done <"$RUN_DIR/images.env"
  prune "$sock" "${want[@]}"
}

# prune SOCK IMAGE...: remove the older tags of Herald's images from containerd (not
# those any container still uses); containerd's garbage collector then frees their
# layers and snapshots, so the store keeps one generation of images.
prune() {
  local sock="$1" image used; shift
  used="$(ctr --address "$sock" -n k8s.io containers ls 2>/dev/null | awk 'NR > 1 { print $2 }' | sort -u)"
  while read -r image; do
    [[ "$image" == "$IMAGE_PREFIX"/* ]] || continue
    printf '%s\n' "$@" | grep -qxF "$image" && continue
    grep -qxF "$image" <<<"$used" && continue
    ctr --address "$sock" -n k8s.io images rm "$image" >/dev/null 2>&1 \
      && log "removed the older image $image from containerd"
  done < <(ctr --address "$sock" -n k8s.io images ls -q 2>/dev/null)
}

case "${1:-}" in
  build) build_all ;;
  load) load_all ;;
  *) die "usage: dev/cluster/images.sh build|load" ;;
esac
