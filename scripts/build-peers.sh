#!/bin/sh
# Builds the agents that bench/compare measures ferry against, at pinned
# versions, from the Go module proxy, into .tools/peers/ (ignored by git):
#
#   .tools/peers/vmagent-v1.151.0
#   .tools/peers/prometheus-v0.316.0   (Prometheus 3.16, run in agent mode)
#
# A binary already there is not built again; remove it to rebuild. Progress
# goes to stderr. `scripts/build-peers.sh --print vmagent` (or prometheus)
# prints the binary's path and builds nothing: the Makefile takes the pinned
# versions from here.
#
# Prometheus takes ~6 minutes on 2 cores, vmagent ~2.
set -eu

VMAGENT_VERSION=v1.151.0
PROMETHEUS_MODULE_VERSION=v0.316.0 # Prometheus 3.16.0: v0.3MM.P is 3.MM.P

root=$(cd "$(dirname "$0")/.." && pwd)
dir=$root/.tools/peers
vmagent=$dir/vmagent-$VMAGENT_VERSION
prometheus=$dir/prometheus-$PROMETHEUS_MODULE_VERSION
GO=${GO:-go}
command -v "$GO" >/dev/null 2>&1 || GO=/usr/local/go/bin/go

if [ "${1:-}" = --print ]; then
	case "${2:-}" in
	vmagent) echo "$vmagent" ;;
	prometheus) echo "$prometheus" ;;
	*) echo "usage: $0 [--print vmagent|prometheus]" >&2; exit 2 ;;
	esac
	exit 0
fi

mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

if [ ! -x "$vmagent" ]; then
	echo "build-peers: vmagent $VMAGENT_VERSION (go install from the module proxy)" >&2
	# The ldflags set what `vmagent -version` prints, as upstream's Makefile does.
	GOBIN=$tmp/bin CGO_ENABLED=0 "$GO" install -trimpath \
		-ldflags "-s -w -X github.com/VictoriaMetrics/VictoriaMetrics/lib/buildinfo.Version=vmagent-$VMAGENT_VERSION" \
		"github.com/VictoriaMetrics/VictoriaMetrics/app/vmagent@$VMAGENT_VERSION"
	mv "$tmp/bin/vmagent" "$vmagent"
fi

if [ ! -x "$prometheus" ]; then
	echo "build-peers: prometheus $PROMETHEUS_MODULE_VERSION (a module of our own that requires it; ~6 min)" >&2
	minor=${PROMETHEUS_MODULE_VERSION#v0.3}
	semver=3.$(echo "$minor" | cut -d. -f1 | sed 's/^0*//').$(echo "$minor" | cut -d. -f2)
	mkdir -p "$tmp/prom"
	cd "$tmp/prom"
	"$GO" mod init ferry.invalid/peers >/dev/null 2>&1
	# Upstream's go.mod at this version has no replace directives to copy;
	# the check below fails the build if a new pin brings some.
	"$GO" mod download -json "github.com/prometheus/prometheus@$PROMETHEUS_MODULE_VERSION" >"$tmp/dl.json"
	upstream_mod=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' "$tmp/dl.json")
	if grep -q '^replace\|^[[:space:]]*replace[[:space:]]' "$upstream_mod"; then
		echo "build-peers: $upstream_mod has replace directives; copy them into this script" >&2
		exit 1
	fi
	# go get of the package (not only the module) requires every module
	# its imports need, at the versions upstream's go.mod asks for or newer
	# (minimal version selection).
	"$GO" get "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_MODULE_VERSION"
	# Tags as upstream's .promu.yml, less builtinassets: agent mode serves no UI.
	CGO_ENABLED=0 "$GO" build -trimpath -tags netgo \
		-ldflags "-s -w -X github.com/prometheus/common/version.Version=$semver -X github.com/prometheus/common/version.Branch=module-$PROMETHEUS_MODULE_VERSION" \
		-o "$tmp/prometheus" github.com/prometheus/prometheus/cmd/prometheus
	mv "$tmp/prometheus" "$prometheus"
fi

echo "build-peers: $("$vmagent" -version 2>&1 | head -1); $("$prometheus" --version 2>&1 | head -1)" >&2
