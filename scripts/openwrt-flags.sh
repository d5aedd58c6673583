#!/bin/sh
# Writes the release's build flags (make release-flags: ferry's Makefile is
# their one source) into the generated block of the OpenWrt feed Makefile,
# packaging/openwrt/ferry/Makefile, between "# --- release flags" and
# "# --- end of release flags".
# Usage: scripts/openwrt-flags.sh [--check]
#   --check: change nothing; exit 1 and show the difference when the block
#            is not what the Makefile's flags give.
set -eu
cd "$(dirname "$0")/.."
mk=packaging/openwrt/ferry/Makefile
flags=$(make -s --no-print-directory release-flags)
get() { printf '%s\n' "$flags" | sed -n "s/^$1=//p"; }

block=$(cat <<BLOCK
FERRY_TAGS:=$(get tags)
FERRY_COLD_PKGS:=$(get cold_pkgs)
FERRY_MIPS_COLD_PKGS:=$(get mips_cold_pkgs)
FERRY_LDFLAGS:=$(get ldflags)
FERRY_PAGE4K_ARCHS:=$(get page4k_archs)
FERRY_PAGE4K_LDFLAGS:=$(get page4k_ldflags)
FERRY_GOMIPS:=$(get gomips)
BLOCK
)
# The feed Makefile assumes these; a change here needs a change there.
[ "$(get ldflags_x)" = "main.version main.commit" ] && [ "$(get cgo_enabled)" = 0 ] && [ "$(get trimpath)" = 1 ] || {
	echo "openwrt-flags: the release's -X variables, cgo or -trimpath changed; update $mk by hand" >&2
	exit 1
}

new=$(awk -v block="$block" '
	/^# --- release flags/ { print; getline; print; print block; skip = 1; next }
	/^# --- end of release flags/ { skip = 0 }
	!skip { print }' "$mk")
if [ "${1:-}" = --check ]; then
	if [ "$new" = "$(cat "$mk")" ]; then
		echo "openwrt-flags: $mk has the release's flags"
		exit 0
	fi
	echo "openwrt-flags: $mk does not have the release's flags (scripts/openwrt-flags.sh updates it):" >&2
	printf '%s\n' "$new" | diff -u "$mk" - >&2 || true
	exit 1
fi
printf '%s\n' "$new" >"$mk"
echo "openwrt-flags: wrote the release's flags into $mk"
