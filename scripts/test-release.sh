#!/usr/bin/env bash
# Builds the release the way a tag would (goreleaser, snapshot: nothing is
# published) and checks what it produced in dist/:
#   - `goreleaser check` on goreleaser.yaml;
#   - the binaries: static, stripped, built with the project's tags and
#     flags, and `ferry version` printing the injected version and commit
#     (arm ones under qemu-user);
#   - checksums.txt, the tar.gz archives (binary, README, LICENSE, sample
#     config);
#   - deb, rpm and ipk: architecture, the files at their paths, the config
#     file as a conffile, the maintainer scripts; the deb's scripts run for
#     real in a private mount namespace (system user, /var/lib/ferry);
#   - the linux/arm64 binary under qemu-aarch64 against Debian's Prometheus
#     as remote-write receiver: node_load1 and ferry_build_info arrive.
# goreleaser is installed with `go install` at the pinned version below, into
# .tools/ (kept by `make clean`), once.
# Under CI=true a missing tool fails the run; otherwise its checks skip.

# `A && ok || bad` is safe here: ok cannot fail.
# shellcheck disable=SC2015
set -euo pipefail

GORELEASER_VERSION=v2.15.1

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
DIST="$ROOT/dist"

passed=0
failed=0
ok() { echo "ok   $*"; passed=$((passed + 1)); }
bad() { echo "FAIL $*"; failed=$((failed + 1)); }
die() { echo "test-release: FAIL: $*" >&2; exit 1; }
# eq WHAT GOT WANT
eq() { if [ "$2" = "$3" ]; then ok "$1: $2"; else bad "$1: got '$2', want '$3'"; fi; }

# need TOOL PACKAGE: is TOOL here? Missing under CI=true is a failure.
need() {
	command -v "$1" >/dev/null 2>&1 && return 0
	if [ "${CI:-}" = "true" ]; then
		die "$1 is missing (Debian package $2; scripts/test-deps.sh installs it)"
	fi
	echo "skip $1 is missing (Debian package $2): its checks do not run (they fail under CI=true)"
	return 1
}

command -v go >/dev/null || die "go is not on PATH"
for t in jq:jq readelf:binutils; do need "${t%%:*}" "${t#*:}" || die "cannot check anything without ${t%%:*}"; done

# --- goreleaser, pinned -------------------------------------------------
GORELEASER="$ROOT/.tools/goreleaser-$GORELEASER_VERSION/goreleaser"
if [ ! -x "$GORELEASER" ]; then
	echo "test-release: installing goreleaser $GORELEASER_VERSION (once; a few minutes)"
	GOBIN="$(dirname "$GORELEASER")" go install "github.com/goreleaser/goreleaser/v2@$GORELEASER_VERSION"
fi

"$GORELEASER" check -f goreleaser.yaml >/dev/null 2>&1 || { "$GORELEASER" check -f goreleaser.yaml; die "goreleaser check"; }
ok "goreleaser check"

# goreleaser reads the commit only when the clone has a remote (it asks git
# for the remote's URL); without one it builds with commit "none". Name the
# project's remote for this process only; the clone is not changed.
if [ -z "$(git remote 2>/dev/null)" ]; then
	export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=remote.origin.url \
		GIT_CONFIG_VALUE_0=https://github.com/ferry-agent/ferry.git
fi
head="$(git rev-parse HEAD 2>/dev/null || true)"
start=$(date +%s)
if ! "$GORELEASER" release -f goreleaser.yaml --snapshot --clean >"$ROOT/.tools/goreleaser.log" 2>&1; then
	tail -30 "$ROOT/.tools/goreleaser.log"
	die "goreleaser release --snapshot (log: .tools/goreleaser.log)"
fi
ok "goreleaser release --snapshot --clean ($(($(date +%s) - start)) s)"

VERSION="$(jq -r .version "$DIST/metadata.json")"
COMMIT="$(jq -r .commit "$DIST/metadata.json")"
[ -z "$head" ] || eq "commit of the build" "$COMMIT" "$head"

# artifact TYPE GOARCH GOARM [EXT]: the path of one artifact in dist/.
artifact() {
	jq -r --arg type "$1" --arg arch "$2" --arg arm "$3" --arg ext "${4:-}" '.[]
		| select(.type == $type and .goarch == $arch and (.goarm // "") == $arm)
		| select($ext == "" or (.path | endswith($ext))) | .path' "$DIST/artifacts.json" |
		sed "s#^#$ROOT/#"
}

WORK="$(mktemp -d)"
PIDS=""
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# --- checksums ---------------------------------------------------------
if (cd "$DIST" && sha256sum --quiet -c checksums.txt); then
	n=$(wc -l <"$DIST/checksums.txt")
	eq "artifacts in checksums.txt, all matching" "$n" 16
else
	bad "sha256sum -c checksums.txt"
fi

# The packages built without inlining: the same in the Makefile and here.
make_cold="$(make --no-print-directory -pn help 2>/dev/null | sed -n 's/^COLD_PKGS := //p' | tr ' ' '\n' | grep . | sort | tr '\n' ' ')"
rel_cold="$(sed -n 's/^      - \(.*\)=-l$/\1/p' goreleaser.yaml | sort | tr '\n' ' ')"
eq "goreleaser's gcflags match the Makefile's COLD_PKGS" "$rel_cold" "$make_cold"

# --- per target --------------------------------------------------------
# name goarch goarm deb/ipk-arch rpm-arch ELF-machine qemu
TARGETS="amd64 amd64 - amd64/x86_64 x86_64 X86-64 -
arm64 arm64 - arm64/arm64 aarch64 AArch64 qemu-aarch64-static
armv7 arm 7 armhf/armhf armv7hl ARM qemu-arm-static
armv6 arm 6 armhf/armhf armv6hl ARM qemu-arm-static"

# The files every package installs, as tar lists them.
PKG_FILES="./etc/ferry/ferry.yml
./usr/bin/ferry
./usr/lib/systemd/system/ferry.service
./var/lib/ferry/"

have_rpm=0; need rpm rpm && have_rpm=1
have_dpkg=0; need dpkg-deb dpkg && have_dpkg=1

while read -r name goarch goarm pkgarch rpmarch machine qemu <&3; do
	[ "$goarm" = - ] && goarm=""
	debarch="${pkgarch%/*}" ipkarch="${pkgarch#*/}"
	bin="$(artifact Binary "$goarch" "$goarm")"
	[ -n "$bin" ] && [ -f "$bin" ] || { bad "$name: no binary in dist/"; continue; }

	# Static (no interpreter), stripped (-s -w), the right machine.
	hdr="$(readelf -hlSW "$bin")"
	case "$hdr" in *"Machine:"*"$machine"*) ok "$name: ELF for $machine" ;; *) bad "$name: not an ELF for $machine" ;; esac
	if grep -q 'Requesting program interpreter' <<<"$hdr"; then bad "$name: dynamically linked"; else ok "$name: static"; fi
	if grep -qE '\] \.(symtab|debug_|zdebug_)' <<<"$hdr"; then bad "$name: not stripped"; else ok "$name: stripped"; fi
	# What go build recorded: CGO off, the project's tag, -trimpath, GOARM.
	info="$(go version -m "$bin")"
	for want in CGO_ENABLED=0 -tags=nethttpomithttp2 -trimpath=true ${goarm:+GOARM=$goarm}; do
		if grep -qE "^\s+build\s+$want\$" <<<"$info"; then ok "$name: built with $want"; else bad "$name: not built with $want"; fi
	done
	# The flash budget holds for the release as for `make size`.
	if [ "$name" = armv7 ]; then
		size="$(stat -c %s "$bin")"
		if [ "$size" -le 10485760 ]; then ok "$name: $size bytes, within the 10 MiB budget"; else bad "$name: $size bytes, over the 10 MiB budget"; fi
	fi
	run=()
	if [ "$qemu" != - ]; then
		need "$qemu" qemu-user-static && run=("$qemu") || run=(skip)
	fi
	if [ "${run[0]:-}" != skip ]; then
		eq "$name: ferry version" "$("${run[@]}" "$bin" version)" \
			"ferry $VERSION (commit $COMMIT, $(go env GOVERSION) linux/$goarch)"
	fi

	# Archive: the binary (the same), README, LICENSE, the sample config.
	tgz="$(artifact Archive "$goarch" "$goarm")"
	eq "$name: archive contents" "$(tar -tzf "$tgz" | sort | tr '\n' ' ')" "LICENSE README.md ferry ferry.example.yml "
	tar -xzOf "$tgz" ferry | cmp -s - "$bin" && ok "$name: archive has this binary" || bad "$name: archive's binary differs"

	# deb
	deb="$(artifact "Linux Package" "$goarch" "$goarm" .deb)"
	if [ "$have_dpkg" = 1 ]; then
		eq "$name: deb Package" "$(dpkg-deb -f "$deb" Package)" ferry
		eq "$name: deb Architecture" "$(dpkg-deb -f "$deb" Architecture)" "$debarch"
		eq "$name: deb Depends" "$(dpkg-deb -f "$deb" Depends)" passwd
		eq "$name: deb files" "$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ || $6 == "./var/lib/ferry/" {print $6}' | sort | tr '\n' ' ')" \
			"$(printf '%s\n./etc/default/ferry\n' "$PKG_FILES" | sort | tr '\n' ' ')"
		dpkg-deb --fsys-tarfile "$deb" | tar -xOf - ./etc/default/ferry | cmp -s - packaging/systemd/ferry.default &&
			ok "$name: deb's /etc/default/ferry is packaging/systemd/ferry.default" || bad "$name: deb's /etc/default/ferry differs"
		eq "$name: deb /usr/bin/ferry mode" "$(dpkg-deb -c "$deb" | awk '$6 == "./usr/bin/ferry" {print $1}')" "-rwxr-xr-x"
		dpkg-deb --fsys-tarfile "$deb" | tar -xOf - ./usr/bin/ferry | cmp -s - "$bin" &&
			ok "$name: deb has this binary" || bad "$name: deb's binary differs"
		dpkg-deb --fsys-tarfile "$deb" | tar -xOf - ./usr/lib/systemd/system/ferry.service |
			cmp -s - packaging/systemd/ferry.service && ok "$name: deb's unit is packaging/systemd/ferry.service" ||
			bad "$name: deb's unit differs from packaging/systemd/ferry.service"
		ctl="$WORK/deb-$name"
		dpkg-deb -e "$deb" "$ctl"
		eq "$name: deb conffiles" "$(sort "$ctl/conffiles" | tr '\n' ' ')" "/etc/default/ferry /etc/ferry/ferry.yml "
		cmp -s "$ctl/postinst" packaging/scripts/postinstall.sh && ok "$name: deb postinst" || bad "$name: deb postinst differs"
		cmp -s "$ctl/prerm" packaging/scripts/preremove.sh && ok "$name: deb prerm" || bad "$name: deb prerm differs"
	fi

	# rpm
	rpmf="$(artifact "Linux Package" "$goarch" "$goarm" .rpm)"
	if [ "$have_rpm" = 1 ]; then
		eq "$name: rpm arch" "$(rpm -qp --qf '%{NAME} %{ARCH} %{LICENSE}' "$rpmf" 2>/dev/null)" "ferry $rpmarch Apache-2.0"
		# FILEFLAGS: c = %config, n = noreplace (the operator's edits stay).
		eq "$name: rpm files" "$(rpm -qp --qf '[%{FILENAMES} %{FILEMODES:perms} %{FILEFLAGS:fflags}\n]' "$rpmf" 2>/dev/null | sort | tr '\n' ' ')" \
			"/etc/default/ferry -rw-r--r-- cn /etc/ferry/ferry.yml -rw-r--r-- cn /usr/bin/ferry -rwxr-xr-x  /usr/lib/systemd/system/ferry.service -rw-r--r--  /var/lib/ferry drwxr-x---  "
		scripts="$(rpm -qp --scripts "$rpmf" 2>/dev/null)"
		grep -q '^postinstall scriptlet' <<<"$scripts" && grep -q 'useradd --system' <<<"$scripts" &&
			ok "$name: rpm postinstall creates the user" || bad "$name: rpm has no postinstall with useradd"
		grep -q '^preuninstall scriptlet' <<<"$scripts" && ok "$name: rpm preuninstall" || bad "$name: rpm has no preuninstall"
	fi

	# ipk: as OpenWrt's opkg-build makes them, a tar.gz of debian-binary,
	# control.tar.gz and data.tar.gz.
	ipk="$(artifact "Linux Package" "$goarch" "$goarm" .ipk)"
	x="$WORK/ipk-$name"
	mkdir -p "$x"
	if tar -xzf "$ipk" -C "$x"; then
		eq "$name: ipk members" "$(tar -tzf "$ipk" | sed 's#^\./##' | tr '\n' ' ')" "debian-binary control.tar.gz data.tar.gz "
		tar -xzf "$x/control.tar.gz" -C "$x"
		eq "$name: ipk Package" "$(sed -n 's/^Package: //p' "$x/control")" ferry
		eq "$name: ipk Architecture" "$(sed -n 's/^Architecture: //p' "$x/control")" "$ipkarch"
		eq "$name: ipk conffiles" "$(cat "$x/conffiles")" /etc/ferry/ferry.yml
		[ -x "$x/postinst" ] && [ -x "$x/prerm" ] && ok "$name: ipk postinst, prerm" || bad "$name: ipk lacks postinst or prerm"
		eq "$name: ipk files" "$(tar -tvzf "$x/data.tar.gz" | awk '$1 !~ /^d/ || $6 == "./var/lib/ferry/" {print $6}' | sort | tr '\n' ' ')" \
			"$(echo "$PKG_FILES" | sort | tr '\n' ' ')"
	else
		bad "$name: ipk is not a tar.gz"
	fi
done 3<<<"$TARGETS"

# --- the deb's maintainer scripts, run for real ------------------------
# In a private mount namespace with copies of /etc and /var/lib and an empty
# /run: useradd edits the copies, the machine is not touched. systemctl is a
# stub that logs its arguments.
maint_scripts() {
	local ctl="$WORK/deb-amd64" ns="$WORK/ns"
	mkdir -p "$ns/etc" "$ns/varlib" "$ns/bin"
	cp -a /etc/. "$ns/etc/"
	printf '#!/bin/sh\necho "systemctl $*" >>%s/systemctl.log\n' "$ns" >"$ns/bin/systemctl"
	chmod +x "$ns/bin/systemctl"
	# shellcheck disable=SC2016
	unshare --mount sh -eu -c '
		ns=$1 ctl=$2
		mount --bind "$ns/etc" /etc
		mount --bind "$ns/varlib" /var/lib
		mount -t tmpfs tmpfs /run
		export PATH="$ns/bin:$PATH"
		! id ferry >/dev/null 2>&1 || { echo "user ferry exists before the install"; exit 1; }
		sh "$ctl/postinst" configure
		echo "user: $(getent passwd ferry | cut -d: -f3,6,7)"
		echo "dir: $(stat -c "%U:%G %a" /var/lib/ferry)"
		# Again, as on an upgrade, this time with systemd running.
		mkdir -p /run/systemd/system
		uid=$(id -u ferry)
		sh "$ctl/postinst" configure
		[ "$(id -u ferry)" = "$uid" ] && echo "upgrade: same user"
		sh "$ctl/prerm" upgrade
		echo "after prerm upgrade: $(cat "$ns/systemctl.log" | tr "\n" ";")"
		sh "$ctl/prerm" remove
		echo "after prerm remove: $(cat "$ns/systemctl.log" | tr "\n" ";")"
	' sh "$ns" "$ctl" >"$WORK/maint.out" 2>&1 || { cat "$WORK/maint.out"; return 1; }
	cat "$WORK/maint.out"
}
if [ "$have_dpkg" = 1 ]; then
	if [ "$(id -u)" -ne 0 ] || ! unshare --mount true 2>/dev/null; then
		[ "${CI:-}" = "true" ] && die "the maintainer scripts run as root in a mount namespace (unshare --mount failed)"
		echo "skip the deb's maintainer scripts: need root and unshare --mount"
	elif out="$(maint_scripts)"; then
		sys_uid_max="$(awk '$1 == "SYS_UID_MAX" {print $2}' /etc/login.defs 2>/dev/null)"
		user="$(sed -n 's/^user: //p' <<<"$out")"
		uid="${user%%:*}"
		[ -n "$uid" ] && [ "$uid" -lt "${sys_uid_max:-1000}" ] && ok "postinst: system user ferry (uid $uid)" ||
			bad "postinst: no system user ferry ($user)"
		eq "postinst: ferry's home and shell" "${user#*:}" "/var/lib/ferry:/usr/sbin/nologin"
		eq "postinst: /var/lib/ferry" "$(sed -n 's/^dir: //p' <<<"$out")" "ferry:ferry 750"
		grep -qx "upgrade: same user" <<<"$out" && ok "postinst: again, as on upgrade" || bad "postinst: second run failed or changed the user"
		eq "postinst with systemd: reloads, enables nothing; prerm upgrade: nothing" \
			"$(sed -n 's/^after prerm upgrade: //p' <<<"$out")" "systemctl daemon-reload;"
		eq "prerm remove: disables and stops" \
			"$(sed -n 's/^after prerm remove: //p' <<<"$out")" \
			"systemctl daemon-reload;systemctl disable ferry.service;systemctl stop ferry.service;"
	else
		bad "the deb's maintainer scripts (output above)"
	fi
fi

# --- linux/arm64 under qemu, against a real receiver --------------------
# free_port: a loopback port nothing listens on (bash's /dev/tcp).
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 40000))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
}
# promql QUERY: "labels value" per series, labels as name=value,... sorted.
promql() {
	curl -fsS --get --data-urlencode "query=$1" "http://$PROM/api/v1/query" |
		jq -r '.data.result[] | "\(.metric | to_entries | map("\(.key)=\(.value)") | sort | join(",")) \(.value[1])"'
}
# wait_for SECONDS COMMAND...: until COMMAND prints something.
wait_for() {
	local deadline=$(($(date +%s) + $1))
	shift
	until [ -n "$("$@" 2>/dev/null)" ]; do
		[ "$(date +%s)" -lt "$deadline" ] || return 1
		sleep 0.5
	done
}

e2e() {
	local bin prom_pid ferry_pid host
	bin="$(artifact Binary arm64 "")"
	PROM="127.0.0.1:$(free_port)"
	printf 'global:\n  scrape_interval: 1h\n' >"$WORK/prometheus.yml"
	prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
		--web.listen-address="$PROM" --web.enable-remote-write-receiver >"$WORK/prometheus.log" 2>&1 &
	prom_pid=$!
	PIDS="$PIDS $prom_pid"
	if ! wait_for 60 curl -fsS "http://$PROM/-/ready"; then
		tail -5 "$WORK/prometheus.log"
		bad "arm64 e2e: prometheus did not become ready"
		return
	fi

	# Known load averages, the rest from the real /proc (as in cmd/ferry's e2e test).
	mkdir -p "$WORK/proc"
	ln -s /proc/stat /proc/meminfo "$WORK/proc/"
	echo "0.42 0.33 0.25 1/123 4567" >"$WORK/proc/loadavg"
	qemu-aarch64-static "$bin" --remote-write.url="http://$PROM/api/v1/write" \
		--storage.path="$WORK/data" --scrape.interval=1s --storage.sync-interval=1s \
		--remote-write.min-backoff=200ms --external-label=device=release-e2e \
		--web.listen-address= --path.procfs="$WORK/proc" >"$WORK/ferry.log" 2>&1 &
	ferry_pid=$!
	PIDS="$PIDS $ferry_pid"
	start=$(date +%s)
	if wait_for 60 promql 'node_load1{device="release-e2e"}' &&
		wait_for 30 promql 'ferry_build_info{device="release-e2e"}'; then
		ok "arm64 e2e: series at the receiver after $(($(date +%s) - start)) s"
	else
		tail -5 "$WORK/ferry.log"
		bad "arm64 e2e: node_load1 or ferry_build_info did not arrive in time"
	fi
	host="$(cat /proc/sys/kernel/hostname)"
	eq "arm64 e2e: node_load1" "$(promql 'node_load1{device="release-e2e"}')" \
		"__name__=node_load1,device=release-e2e,instance=$host,job=node 0.42"
	eq "arm64 e2e: ferry_build_info" "$(promql 'ferry_build_info{device="release-e2e"}' | sed 's/goversion=[^,]*,//')" \
		"__name__=ferry_build_info,device=release-e2e,instance=$host,job=ferry,version=$VERSION 1"

	# SIGTERM: ferry commits what it holds and exits 0.
	kill -TERM "$ferry_pid"
	local code=0
	wait "$ferry_pid" || code=$?
	eq "arm64 e2e: exit status after SIGTERM" "$code" 0
	kill -TERM "$prom_pid" 2>/dev/null || true
	wait "$prom_pid" 2>/dev/null || true
}
if need qemu-aarch64-static qemu-user-static && need prometheus prometheus && need curl curl; then
	e2e
fi

echo "test-release: $passed passed, $failed failed (dist/: $(du -sh "$DIST" | cut -f1))"
[ "$failed" -eq 0 ]
