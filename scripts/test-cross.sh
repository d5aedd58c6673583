#!/usr/bin/env bash
# Runs the given packages' tests as linux/arm (GOARM=7), linux/arm64 and
# linux/mips, linux/mipsle (GOMIPS=softfloat) binaries under qemu-user, as
# they would run on a device.
# Usage: scripts/test-cross.sh PACKAGE...
# CROSS_RUN=REGEXP: only the tests it matches (go test -run).
# With CROSS_FULL=1, without -short: the end-to-end runs too (ferry built for
# the target architecture, run under the emulator, against the real
# receivers) and the long crash, cap and memory tests.
set -euo pipefail
short=-short
[ "${CROSS_FULL:-}" = 1 ] && short=

run() { # GOARCH GOARM QEMU PACKAGE...
	local arch=$1 arm=$2 qemu=$3
	shift 3
	if ! command -v "$qemu" >/dev/null; then
		echo "test-cross: $qemu is missing (scripts/test-deps.sh installs qemu-user-static)" >&2
		[ "${CI:-}" = "true" ] && exit 1
		echo "test-cross: skipping $arch" >&2
		return 0
	fi
	echo "test-cross: linux/$arch${arm:+ GOARM=$arm} under $qemu"
	# FERRY_TEST_EXEC: for tests that start their own binary as a child.
	FERRY_TEST_EXEC=$qemu CGO_ENABLED=0 GOOS=linux GOARCH=$arch GOARM=$arm \
		go test -count=1 $short ${CROSS_RUN:+-run "$CROSS_RUN"} -exec "$qemu" "$@"
}

# CROSS_ARCHS picks the targets: arm (GOARM=7) and arm64 by default; mips
# (big-endian) and mipsle, both GOMIPS=softfloat as the release builds them,
# on request (make test-cross runs them on chosen packages).
for a in ${CROSS_ARCHS:-arm arm64}; do
	case "$a" in
	arm) run arm 7 qemu-arm-static "$@" ;;
	arm64) run arm64 "" qemu-aarch64-static "$@" ;;
	mips) GOMIPS=softfloat run mips "" qemu-mips-static "$@" ;;       # big-endian
	mipsle) GOMIPS=softfloat run mipsle "" qemu-mipsel-static "$@" ;; # little-endian
	*) echo "test-cross: unknown architecture $a" >&2; exit 2 ;;
	esac
done
