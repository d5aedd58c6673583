#!/usr/bin/env bash
# Installs what ferry's tests need, when it is missing: Debian's prometheus
# (the remote-write receiver of the end-to-end test), victoria-metrics,
# prometheus-node-exporter (compared with ferry's host collectors),
# qemu-user-static (tests as armv7 and arm64), busybox (the OpenWrt init
# script's shell), systemd (systemd-analyze checks the unit), chromium
# (loads the status page headless), and for scripts/test-release.sh rpm
# (reads the rpm packages), binutils (readelf), jq and curl.
# Under CI=true, anything that cannot be installed fails the run.
set -euo pipefail

need=()
command -v prometheus >/dev/null          || need+=(prometheus)
command -v victoria-metrics >/dev/null    || need+=(victoria-metrics)
command -v prometheus-node-exporter >/dev/null || need+=(prometheus-node-exporter)
command -v qemu-arm-static >/dev/null     || need+=(qemu-user-static)
command -v busybox >/dev/null             || need+=(busybox)
command -v systemd-analyze >/dev/null     || need+=(systemd)
command -v xz >/dev/null                  || need+=(xz-utils)
command -v rpm >/dev/null                 || need+=(rpm)
command -v python3 >/dev/null             || need+=(python3)
command -v zstd >/dev/null                || need+=(zstd)
command -v readelf >/dev/null             || need+=(binutils)
command -v jq >/dev/null                  || need+=(jq)
command -v curl >/dev/null                || need+=(curl)
command -v chromium >/dev/null            || need+=(chromium)

if [ ${#need[@]} -eq 0 ]; then
	echo "test dependencies: all present"
	exit 0
fi

echo "test dependencies: installing ${need[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
if ! { $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"; }; then
	if [ "${CI:-}" = "true" ]; then
		echo "test dependencies: could not install ${need[*]}" >&2
		exit 1
	fi
	echo "test dependencies: could not install ${need[*]}; tests that need them will skip (they fail under CI=true)" >&2
fi

# Debian starts the services it installs where it can; the tests run their
# own instances on free ports, so stop these to keep the machine quiet.
for svc in prometheus victoria-metrics prometheus-node-exporter; do
	$sudo service "$svc" stop >/dev/null 2>&1 || true
done
