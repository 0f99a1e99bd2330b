#!/usr/bin/env bash
# The Debian bookworm root filesystem (python3 3.11, venv, CA certificates) that stands
# in for the python:3.11-slim image, made with debootstrap from the Debian mirror apt
# already uses on this machine. Prints the path of the cached tarball.
#
#   dev/cluster/rootfs.sh            -> $CACHE_DIR/rootfs/debian-<suite>-<key>.tar
#
# Cached by its inputs (this script, lib.sh's suite and package list); debootstrap runs
# only when that tarball is missing (about 1-3 minutes).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KEY_EXTRA="$ROOTFS_SUITE $ROOTFS_PACKAGES"
k="$(key "${BASH_SOURCE[0]}")"
out="$CACHE_DIR/rootfs/debian-$ROOTFS_SUITE-$k.tar"
if [[ -f "$out" ]]; then echo "$out"; exit 0; fi

command -v debootstrap >/dev/null || die "debootstrap is not installed (dev/cluster/build.sh debs)"
mirror="$(debian_mirror)" || die "no Debian mirror for $ROOTFS_SUITE in /etc/apt/sources.list*; set HERALD_DEBIAN_MIRROR"
mkdir -p "$CACHE_DIR/rootfs"
work="$(mktemp -d "$CACHE_DIR/rootfs/.build.XXXXXX")"
# debootstrap mounts proc and sys inside the target: unmount before removing anything.
cleanup() {
  local m
  for m in $(awk -v w="$work" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
log "debootstrap $ROOTFS_SUITE ($ROOTFS_PACKAGES) from $mirror"
start=$SECONDS
nice -n 10 debootstrap --variant=minbase --include="$ROOTFS_PACKAGES" \
  "$ROOTFS_SUITE" "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
# Later apt-get installs in image builds see the same archives as the host: the suite,
# its updates and its security archive, from the mirrors apt uses here.
{
  echo "deb $mirror $ROOTFS_SUITE main"
  echo "deb $mirror $ROOTFS_SUITE-updates main"
  if sec="$(debian_mirror "$ROOTFS_SUITE-security")"; then echo "deb $sec $ROOTFS_SUITE-security main"; fi
} >"$work/root/etc/apt/sources.list"
# An image, not a machine: no package caches, no machine identity, no services.
rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"* \
  "$work/root/var/log/"*.log "$work/root/tmp/"*
: >"$work/root/etc/machine-id"
printf '#!/bin/sh\nexit 101\n' >"$work/root/usr/sbin/policy-rc.d"
chmod 755 "$work/root/usr/sbin/policy-rc.d"
tar --numeric-owner -C "$work/root" -cf "$work/rootfs.tar" .
mv -f "$work/rootfs.tar" "$out"
log "root filesystem ready in $((SECONDS - start))s: $out ($(du -h "$out" | cut -f1))"
echo "$out"
