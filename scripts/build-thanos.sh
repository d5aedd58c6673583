#!/bin/sh
# Builds Thanos (one binary: `thanos receive`, `thanos query`, ...) at a
# pinned version from the Go module proxy into .tools/thanos/ (ignored by
# git), for the fleet test (bench/fleet):
#
#   .tools/thanos/thanos-v0.42.5
#
# A binary already there is not built again; remove it to rebuild.
# `scripts/build-thanos.sh --print` prints the binary's path and builds
# nothing. Progress goes to stderr. ~10 minutes on 2 cores the first time.
#
# Thanos v0.42.5 asks for go >= 1.26.10: the go command fetches that
# toolchain (GOTOOLCHAIN below) from the module proxy when the local one is
# older. `slicelabels` is one of upstream's build tags (.promu.yml): Thanos'
# zero-copy label code takes Prometheus' labels to be a slice, and without
# it (Prometheus' default is stringlabels) its receivers read corrupted
# memory and crash within seconds. Upstream's other tag, netgo, is what
# CGO_ENABLED=0 gives already (the pure Go resolver).
set -eu

THANOS_VERSION=v0.42.5
THANOS_TOOLCHAIN=go1.26.10

root=$(cd "$(dirname "$0")/.." && pwd)
dir=$root/.tools/thanos
thanos=$dir/thanos-$THANOS_VERSION
GO=${GO:-go}
command -v "$GO" >/dev/null 2>&1 || GO=/usr/local/go/bin/go

if [ "${1:-}" = --print ]; then
	echo "$thanos"
	exit 0
fi
[ -x "$thanos" ] && { echo "build-thanos: $("$thanos" --version 2>&1 | head -1)" >&2; exit 0; }

mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
export GOTOOLCHAIN=$THANOS_TOOLCHAIN

echo "build-thanos: thanos $THANOS_VERSION (a module of our own that requires it; toolchain $GOTOOLCHAIN)" >&2
mkdir -p "$tmp/mod"
cd "$tmp/mod"
"$GO" mod init ferry.invalid/thanos >/dev/null 2>&1
"$GO" mod edit -go=1.26.10

# Upstream's replace directives at this version (they are part of how it
# builds: pinned forks and renamed modules), copied from its go.mod. The
# check below fails the build when a new pin brings different ones.
cat >>go.mod <<'MOD'

replace (
	capnproto.org/go/capnp/v3 => capnproto.org/go/capnp/v3 v3.0.0-alpha.30
	github.com/bradfitz/gomemcache => github.com/themihai/gomemcache v0.0.0-20180902122335-24332e2d58ab
	github.com/sercand/kuberesolver/v4 => github.com/sercand/kuberesolver/v5 v5.1.1
	github.com/vimeo/galaxycache => github.com/thanos-community/galaxycache v0.0.0-20211122094458-3a32041a1f1e
	gopkg.in/alecthomas/kingpin.v2 => github.com/alecthomas/kingpin v1.3.8-0.20210301060133-17f40c25f497
	zenhack.net/go/util => github.com/zenhack/go-util v0.0.0-20231005031245-66f5419c2aea
)
MOD
"$GO" mod download -json "github.com/thanos-io/thanos@$THANOS_VERSION" >"$tmp/dl.json"
upstream_mod=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' "$tmp/dl.json")
# The "old => new" lines of a replace block, comments and blanks left out.
replaces() { sed -n '/^replace (/,/^)/p' "$1" | grep '=>' | sed 's://.*$::; s/[[:space:]]\{1,\}/ /g; s/^ //; s/ $//' | sort; }
if [ "$(replaces "$upstream_mod")" != "$(replaces go.mod)" ]; then
	echo "build-thanos: the replace directives of $upstream_mod differ from this script's; copy them" >&2
	diff "$upstream_mod" go.mod >&2 || true
	exit 1
fi
# go get of the package requires every module its imports need, at the
# versions upstream's go.mod asks for or newer (minimal version selection).
"$GO" get "github.com/thanos-io/thanos/cmd/thanos@$THANOS_VERSION"
CGO_ENABLED=0 "$GO" build -trimpath -tags slicelabels \
	-ldflags "-s -w -X github.com/prometheus/common/version.Version=${THANOS_VERSION#v} -X github.com/prometheus/common/version.Branch=module-$THANOS_VERSION" \
	-o "$tmp/thanos" github.com/thanos-io/thanos/cmd/thanos
mv "$tmp/thanos" "$thanos"
echo "build-thanos: $("$thanos" --version 2>&1 | head -1)" >&2
