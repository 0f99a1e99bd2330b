#!/usr/bin/env bash
# Build the herald-ferretdb wrapper (FerretDB on PostgreSQL or SQLite) into .run/bin/.
#
# Usage: dev/ferretdb/build.sh [--force]
#
# FerretDB is built with the patches in dev/ferretdb/patches/ applied (see the README
# there): the module is copied from the Go module cache into .run/build/ferretdb/, patched,
# and used through a generated go.mod that replaces it with the patched copy.
#
# Skips the build when the binary is up to date with go.mod, go.sum, the Go files, the
# patches, this script and the Go version. Uses the normal Go module and build caches, so
# only the first build on a machine is slow. Runs under `nice` to leave the CPU to tests.
set -euo pipefail

SRC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SRC_DIR/../.." && pwd)"
BIN_DIR="$REPO_ROOT/.run/bin"
BIN="$BIN_DIR/herald-ferretdb"
STAMP="$BIN.stamp"
BUILD_DIR="$REPO_ROOT/.run/build/ferretdb"
FERRETDB_MODULE=github.com/FerretDB/FerretDB
# Both backends are built: PostgreSQL is the default, SQLite stays for comparison.
BUILD_TAGS=""

force=0
case "${1:-}" in
  "") ;;
  --force) force=1 ;;
  -h | --help)
    sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "build.sh: unknown argument: $1 (usage: dev/ferretdb/build.sh [--force])" >&2
    exit 2
    ;;
esac

GO="$(command -v go || true)"
if [[ -z "$GO" && -x /usr/local/go/bin/go ]]; then
  GO=/usr/local/go/bin/go
fi
if [[ -z "$GO" ]]; then
  echo "build.sh: Go toolchain not found (looked on PATH and in /usr/local/go/bin)" >&2
  exit 1
fi

# Fingerprint of everything the binary depends on.
stamp="$(
  {
    "$GO" version
    echo "tags=$BUILD_TAGS"
    cd "$SRC_DIR" && sha256sum go.mod go.sum ./*.go ./*.sql build.sh patches/*.patch
  } | sha256sum | cut -d' ' -f1
)"

if [[ $force -eq 0 && -x "$BIN" && -f "$STAMP" && "$(cat "$STAMP")" == "$stamp" ]]; then
  echo "herald-ferretdb is up to date: $BIN"
  exit 0
fi

if ! command -v patch >/dev/null; then
  echo "build.sh: the patch command is missing (Debian package: patch)" >&2
  exit 1
fi

# The patched module and the go.mod (and go.sum beside it) that points at it.
prepare_patched_module() {
  local dir p
  dir="$(cd "$SRC_DIR" && GOFLAGS=-mod=readonly "$GO" mod download -json "$FERRETDB_MODULE" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  if [[ -z "$dir" || ! -d "$dir" ]]; then
    echo "build.sh: could not download $FERRETDB_MODULE" >&2
    return 1
  fi
  rm -rf "$BUILD_DIR"
  mkdir -p "$BUILD_DIR"
  cp -r "$dir" "$BUILD_DIR/FerretDB"
  chmod -R u+w "$BUILD_DIR/FerretDB"
  for p in "$SRC_DIR"/patches/*.patch; do
    patch -d "$BUILD_DIR/FerretDB" -p1 --forward --quiet <"$p" ||
      { echo "build.sh: $(basename "$p") does not apply to $FERRETDB_MODULE" >&2; return 1; }
  done
  cp "$SRC_DIR/go.mod" "$BUILD_DIR/go.mod"
  cp "$SRC_DIR/go.sum" "$BUILD_DIR/go.sum"
  echo "replace $FERRETDB_MODULE => $BUILD_DIR/FerretDB" >>"$BUILD_DIR/go.mod"
}

mkdir -p "$BIN_DIR"
prepare_patched_module
echo "building herald-ferretdb ($("$GO" version | cut -d' ' -f3)); a first build takes about a minute..."
start=$SECONDS
tmp="$BIN.tmp.$$"
trap 'rm -f "$tmp"' EXIT
(
  cd "$SRC_DIR"
  GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 \
    nice -n 10 "$GO" build -modfile "$BUILD_DIR/go.mod" -trimpath -tags "$BUILD_TAGS" \
    -ldflags "-s -w" -o "$tmp" .
)
mv -f "$tmp" "$BIN"
echo "$stamp" >"$STAMP"
echo "built $BIN in $((SECONDS - start))s"
