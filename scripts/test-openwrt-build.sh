#!/usr/bin/env bash
# Builds ferry the way the OpenWrt feed package (packaging/openwrt/ferry/Makefile)
# makes golang-package.mk build it, for armv7 (with PIE asked for, as
# CONFIG_PKG_ASLR_PIE_ALL would), mips (ath79) and mipsle (ramips), and checks:
#   - the package's generated release-flag block matches ferry's Makefile;
#   - the go command line and environment golang-package.mk ends up with:
#     cgo off, soft float on MIPS, GOARM=7, the tag, every cold package's
#     -gcflags, -s -w, -R 0x1000, version and commit, no external linking,
#     no PIE;
#   - the binary it builds: static, stripped, the same build settings and
#     (within a page or so: build ID and version strings) the same size as
#     `make cross`'s, `ferry version` under qemu-user, and within the flash
#     budget;
#   - Package/ferry/install: the binary, init script and UCI config at their
#     paths; USERID ferry:ferry.
# No OpenWrt SDK here: scripts/testdata/openwrt-sdk/ stands in for the parts of
# the buildroot and golang-package.mk that decide the build (its README.md).
# Usage: scripts/test-openwrt-build.sh [armv7|mips|mipsle]...
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
SDK="$ROOT/scripts/testdata/openwrt-sdk"
MK="$ROOT/packaging/openwrt/ferry/Makefile"
BUDGET=10485760

passed=0 failed=0
ok() { echo "ok   $*"; passed=$((passed + 1)); }
bad() { echo "FAIL $*"; failed=$((failed + 1)); }
# has WHAT HAYSTACK NEEDLE: a whole line of HAYSTACK is NEEDLE.
has() { if grep -qxF -- "$3" <<<"$2"; then ok "$1"; else bad "$1: no line '$3'"; fi; }
hasnt() { if grep -qF -- "$3" <<<"$2"; then bad "$1: has '$3'"; else ok "$1"; fi; }

if scripts/openwrt-flags.sh --check >/dev/null 2>&1; then ok "the feed Makefile's release flags are ferry's Makefile's"
else scripts/openwrt-flags.sh --check || true; bad "the feed Makefile's release flags differ (run scripts/openwrt-flags.sh)"; fi

flags="$(make -s --no-print-directory release-flags)"
get() { sed -n "s/^$1=//p" <<<"$flags"; }
commit="$(sed -n 's/^PKG_SOURCE_VERSION:=//p' "$MK")"
version="$(sed -n 's/^PKG_VERSION:=//p' "$MK")"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# The reference: make cross's binaries for the same targets.
make -s --no-print-directory cross CROSS="linux/arm/7 linux/mips linux/mipsle" BIN="$WORK/ref" VERSION="$version" COMMIT="$commit" >/dev/null

# name ARCH CONFIG... : OpenWrt's target settings for a typical board.
TARGETS="armv7 arm arm ARM qemu-arm-static CONFIG_CPU_TYPE=cortex-a7+neon-vfpv4 CONFIG_PKG_ASLR_PIE_ALL=y
mips mips mips MIPS qemu-mips-static CONFIG_CPU_TYPE=24kc CONFIG_PKG_ASLR_PIE_REGULAR=y
mipsle mipsel mipsle MIPS qemu-mipsel-static CONFIG_CPU_TYPE=24kc CONFIG_PKG_ASLR_PIE_REGULAR=y"
want_targets="${*:-armv7 mips mipsle}"

while read -r name arch goarch machine qemu config; do
	case " $want_targets " in *" $name "*) ;; *) continue ;; esac
	t="$WORK/$name"
	mkdir -p "$t"
	# shellcheck disable=SC2086
	owrt() { make -s --no-print-directory -C "$(dirname "$MK")" -f "$MK" TOPDIR="$SDK" TMP_DIR="$t" PKG_BUILD_DIR="$ROOT" \
		ARCH="$arch" $config GO_BUILD_CACHE_DIR="$(go env GOCACHE)" GO_MOD_CACHE_DIR="$(go env GOMODCACHE)" "$@"; }
	if ! out="$(owrt compile 2>&1)"; then
		tail -20 <<<"$out"
		bad "$name: the package's compile step failed"
		continue
	fi
	ok "$name: the package's compile step built ferry"
	env="$(sed -n 's/^go-install-env: //p' <<<"$out")"
	args="$(sed -n 's/^go-install-arg: //p' <<<"$out")"
	case "$goarch" in
	arm) want_env="GOARCH=arm GOARM=7 GOMIPS= CGO_ENABLED=0" ;;
	*) want_env="GOARCH=$goarch GOARM= GOMIPS=$(get gomips) CGO_ENABLED=0" ;;
	esac
	[ "$env" = "$want_env" ] && ok "$name: environment $env" || bad "$name: environment '$env', want '$want_env'"
	has "$name: -trimpath" "$args" -trimpath
	has "$name: -tags" "$args" "$(get tags)"
	cold="$(get cold_pkgs)"
	case "$goarch" in mips*) cold="$cold $(get mips_cold_pkgs)" ;; *)
		for p in $(get mips_cold_pkgs); do hasnt "$name: inlining kept in $p" "$args" "-gcflags=$p=-l"; done ;;
	esac
	for p in $cold; do has "$name: -gcflags=$p=-l" "$args" "-gcflags=$p=-l"; done
	ld="$(grep -F -- '-X main.version' <<<"$args" || true)"
	want_ld="$(get ldflags)"
	case " $(get page4k_archs) " in *" $goarch "*) want_ld="$want_ld $(get page4k_ldflags)" ;; esac
	case "$ld" in "$want_ld -X main.version=$version -X main.commit=$commit "*) ok "$name: -ldflags $want_ld -X ..." ;;
	*) bad "$name: -ldflags '$ld', want '$want_ld -X main.version=$version -X main.commit=$commit ...'" ;; esac
	hasnt "$name: no external linking" "$args" "-linkmode external"
	hasnt "$name: no PIE" "$args" "pie"

	bin="$t/go_work/build/bin/linux_$goarch/ferry"
	[ -f "$bin" ] || { bad "$name: no binary at $bin"; continue; }
	hdr="$(readelf -hlSW "$bin")"
	case "$hdr" in *"Machine:"*"$machine"*) ok "$name: ELF for $machine" ;; *) bad "$name: not an ELF for $machine" ;; esac
	if grep -q 'Requesting program interpreter' <<<"$hdr"; then bad "$name: dynamically linked"; else ok "$name: static"; fi
	if grep -qE '\] \.(symtab|debug_)' <<<"$hdr"; then bad "$name: not stripped"; else ok "$name: stripped"; fi
	ref="$WORK/ref/ferry-linux-$name"
	settings() { go version -m "$1" | awk '$1 == "build" && $2 !~ /^(-ldflags|vcs)/ { print $2 }' | sort; }
	[ "$(settings "$bin")" = "$(settings "$ref")" ] && ok "$name: build settings as make cross: $(settings "$bin" | tr '\n' ' ')" ||
		bad "$name: build settings differ from make cross: $(diff <(settings "$ref") <(settings "$bin") | grep '^[<>]' | tr '\n' ' ')"
	size=$(stat -c %s "$bin") refsize=$(stat -c %s "$ref")
	d=$((size - refsize)); [ $d -lt 0 ] && d=$((-d))
	# A flag missing would cost 35 KiB (-R) to 600 KiB (-l); build ID and version strings a few bytes.
	[ $d -le 16384 ] && ok "$name: $size bytes, make cross $refsize" || bad "$name: $size bytes, make cross $refsize: not the same build"
	[ "$size" -le $BUDGET ] && ok "$name: within the flash budget ($BUDGET)" || bad "$name: $size bytes, over the flash budget of $BUDGET"
	if command -v "$qemu" >/dev/null; then
		v="$("$qemu" "$bin" version 2>&1 || true)"
		want="ferry $version (commit $commit, $(go env GOVERSION) linux/$goarch)"
		[ "$v" = "$want" ] && ok "$name: runs under $qemu: $v" || bad "$name: under $qemu: '$v', want '$want'"
	elif [ "${CI:-}" = true ]; then bad "$name: $qemu is missing"
	else echo "skip $name: $qemu is missing"; fi

	owrt install PKG_INSTALL_ROOT="$t/root" >/dev/null
	files="$(cd "$t/root" && find . -type f -printf '%p %m\n' | sort | tr '\n' ' ')"
	[ "$files" = "./etc/config/ferry 600 ./etc/init.d/ferry 755 ./usr/bin/ferry 755 " ] && ok "$name: package files $files" ||
		bad "$name: package files '$files'"
	[ "$(owrt userid)" = ferry:ferry ] && ok "$name: USERID ferry:ferry" || bad "$name: USERID '$(owrt userid)'"
done <<<"$TARGETS"

echo "test-openwrt-build: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
