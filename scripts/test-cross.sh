#!/usr/bin/env bash
# Runs the given packages' tests as linux/arm (GOARM=7) and linux/arm64
# binaries under qemu-user, as they would run on a device.
# Usage: scripts/test-cross.sh PACKAGE...
set -euo pipefail

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
		go test -count=1 -short -exec "$qemu" "$@"
}

run arm 7 qemu-arm-static "$@"
run arm64 "" qemu-aarch64-static "$@"
