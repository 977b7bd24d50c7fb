#!/usr/bin/env bash
# Build the Go echo servers of `zerows-loadtest compare --go` from Debian's
# packaged sources in GOPATH mode, so that no module proxy is needed:
#
#   apt-get install golang-go golang-github-gorilla-websocket-dev \
#       golang-nhooyr-websocket-dev golang-golang-x-net-dev
#
# Usage: loadtest/peers-go/build.sh [OUTDIR]
#   OUTDIR  where the binaries go (default: the release directory of the
#           Cargo target, ${CARGO_TARGET_DIR:-target}/release, since compare
#           looks for its peers next to its own binary)
# Writes OUTDIR/peer-go-gorilla, OUTDIR/peer-go-nhooyr, OUTDIR/peer-go-xnet.
#
# Environment: GOCODE (default /usr/share/gocode), the packaged sources.
# Fails, naming what to install, if go or a package is missing.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${1:-$TARGET/release}
GOCODE=${GOCODE:-/usr/share/gocode}

die() { echo "build.sh: error: $*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "go not found (apt-get install golang-go)"
# import path -> Debian package
need=(
    "github.com/gorilla/websocket golang-github-gorilla-websocket-dev"
    "nhooyr.io/websocket golang-nhooyr-websocket-dev"
    "github.com/klauspost/compress/flate golang-github-klauspost-compress-dev"
    "golang.org/x/net/websocket golang-golang-x-net-dev"
)
missing=()
for entry in "${need[@]}"; do
    read -r path pkg <<< "$entry"
    [ -d "$GOCODE/src/$path" ] || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] || die "missing Go sources under $GOCODE/src (apt-get install ${missing[*]})"

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
# GOPATH mode: our sources first, then Debian's. Without cgo the binaries
# need no C toolchain to build.
export GO111MODULE=off GOPATH="$HERE:$GOCODE" GOFLAGS='' CGO_ENABLED=0
# go needs a build cache; a machine with no HOME gets one in the target.
if [ -z "${GOCACHE:-}" ] && [ -z "${HOME:-}" ] && [ -z "${XDG_CACHE_HOME:-}" ]; then
    export GOCACHE="$TARGET/go-build-cache"
fi
echo "build.sh: $(go version), sources: $GOCODE"
for server in gorilla nhooyr xnet; do
    go build -trimpath -o "$OUT/peer-go-$server" "zerows-peers/$server"
    echo "build.sh: built $OUT/peer-go-$server"
done
