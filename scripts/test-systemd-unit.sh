#!/bin/sh
# Checks packaging/systemd/ferry.service.
#
# 1. Always: the directives issue 7 asks for, with grep (dedicated user,
#    StateDirectory, hardening, only the state directory writable,
#    Restart=on-failure), and that the buffer path in ExecStart is the state
#    directory.
# 2. When systemd-analyze is available and works here: `systemd-analyze
#    verify` on the unit (any warning fails, e.g. a misspelt directive), and
#    `systemd-analyze security --offline=true` with an exposure threshold.
#    verify insists that ExecStart's binary exists, so it checks a copy of
#    the unit whose ExecStart points at $FERRY (or /usr/bin/ferry, or true)
#    when /usr/bin/ferry is missing.
# 3. /etc/default/ferry (packaging/systemd/ferry.default): the unit reads
#    it (EnvironmentFile=-, ExecStart ending in $ARGS), and the shipped file
#    is one EnvironmentFile= reads, with ARGS empty.
# FERRY=path/to/ferry also checks that ExecStart's flags, and those of the
# default file's example, exist in ferry.
set -eu

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
UNIT="${FERRY_UNIT:-$ROOT/packaging/systemd/ferry.service}"
# systemd-analyze's exposure score times 10 (1.9 today); fail above 2.5.
SECURITY_THRESHOLD=25

passed=0
failed=0
ok() { echo "ok   $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; failed=$((failed + 1)); }

# has KEY=VALUE: the unit sets exactly this line.
has() {
	if grep -qxF -- "$1" "$UNIT"; then ok "$1"; else fail "missing: $1"; fi
}

has "User=ferry"
has "Group=ferry"
has "StateDirectory=ferry"
has "Restart=on-failure"
has "NoNewPrivileges=yes"
has "ProtectSystem=strict"
has "ProtectHome=yes"
has "PrivateTmp=yes"

# Only the state directory is writable: no other ReadWritePaths=, and no
# other *Directory= that systemd would make writable.
rw="$(grep -E '^ReadWritePaths=' "$UNIT" | sed 's/^ReadWritePaths=//' | tr ' ' '\n' | grep -v '^$' || true)"
if [ -z "$rw" ] || [ "$rw" = "/var/lib/ferry" ]; then
	ok "writable: only /var/lib/ferry"
else
	fail "writable paths besides /var/lib/ferry: $(echo "$rw" | tr '\n' ' ')"
fi
if grep -qE '^(CacheDirectory|LogsDirectory|RuntimeDirectory|ConfigurationDirectory)=' "$UNIT"; then
	fail "a *Directory= besides StateDirectory= makes another path writable"
else
	ok "no writable directory besides StateDirectory="
fi
if grep -qE '^DynamicUser=(yes|true|1)' "$UNIT"; then
	fail "DynamicUser= set: the packages create a fixed user ferry"
else
	ok "no DynamicUser="
fi

grep -qE '^ExecReload=/bin/kill -HUP \$MAINPID$' "$UNIT" && ok "reload sends SIGHUP (ferry reloads in place)" || fail "no ExecReload with SIGHUP"
exec_line="$(grep -E '^ExecStart=' "$UNIT" | head -1 | sed 's/^ExecStart=//')"
case " $exec_line " in
*" --storage.path=/var/lib/ferry "*) ok "ExecStart keeps the buffer in the state directory" ;;
*) fail "ExecStart's --storage.path is not /var/lib/ferry: $exec_line" ;;
esac

# Flags from /etc/default/ferry, as Debian's prometheus units take them:
# the file is optional (- prefix), its ARGS come last on the command line.
DEFAULT="${FERRY_DEFAULT:-$ROOT/packaging/systemd/ferry.default}"
has "EnvironmentFile=-/etc/default/ferry"
case "$exec_line" in
*' $ARGS') ok "ExecStart ends with \$ARGS" ;;
*) fail "ExecStart does not end with \$ARGS: $exec_line" ;;
esac
# The shipped file is what EnvironmentFile= reads: comments and KEY="VALUE"
# lines only, and it sets ARGS, empty (ferry runs as without it).
if grep -vE '^(#.*|[A-Z_]+="[^"]*"|)$' "$DEFAULT" >/dev/null; then
	fail "$(basename "$DEFAULT"): lines EnvironmentFile= would not read: $(grep -vE '^(#.*|[A-Z_]+="[^"]*"|)$' "$DEFAULT" | head -1)"
else
	ok "$(basename "$DEFAULT"): comments and KEY=\"VALUE\" lines only"
fi
eq_args="$(grep -E '^ARGS=' "$DEFAULT" || true)"
if [ "$eq_args" = 'ARGS=""' ]; then ok "$(basename "$DEFAULT") sets ARGS, empty"; else fail "$(basename "$DEFAULT"): ARGS line is '$eq_args', want ARGS=\"\""; fi

if [ -n "${FERRY:-}" ]; then
	help="$("$FERRY" --help 2>&1 || true)"
	# The example in the default file's comments uses flags ferry has.
	bad=""
	for arg in $(sed -n 's/^#[[:space:]]*ARGS="\(.*\)"$/\1/p' "$DEFAULT"); do
		flag="${arg%%=*}"
		printf '%s\n' "$help" | grep -qE -- "^ +$flag( |\[)" || bad="$bad $flag"
	done
	if [ -z "$bad" ] && grep -qE '^#[[:space:]]*ARGS="--' "$DEFAULT"; then
		ok "the example ARGS in $(basename "$DEFAULT") are flags of ferry"
	else
		fail "no example ARGS, or flags not in ferry:$bad"
	fi
	bad=""
	for arg in $exec_line; do
		case "$arg" in
		--*) flag="${arg%%=*}" ;;
		*) continue ;;
		esac
		printf '%s\n' "$help" | grep -qF -- "$flag " || bad="$bad $flag"
	done
	if [ -z "$bad" ]; then ok "ExecStart's flags are in \`ferry --help\`"; else fail "flags not in ferry:$bad"; fi
fi

if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "skip systemd-analyze is not installed: checked the directives with grep only"
else
	work="$(mktemp -d)"
	trap 'rm -rf "$work"' EXIT INT TERM
	truebin=/bin/true
	[ -x "$truebin" ] || truebin=/usr/bin/true
	# Does verify work at all here (containers without systemd may fail)?
	printf '[Unit]\nDescription=probe\n[Service]\nExecStart=%s\n' "$truebin" >"$work/probe.service"
	if ! systemd-analyze verify "$work/probe.service" >"$work/probe.out" 2>&1 || [ -s "$work/probe.out" ]; then
		echo "skip systemd-analyze verify does not work here ($(head -1 "$work/probe.out")): checked the directives with grep only"
	else
		bin=/usr/bin/ferry
		if [ ! -x "$bin" ]; then
			bin="${FERRY:-$truebin}"
			case "$bin" in /*) ;; *) bin="$(pwd)/$bin" ;; esac
		fi
		sed "s#^ExecStart=/usr/bin/ferry #ExecStart=$bin #" "$UNIT" >"$work/ferry.service"
		if systemd-analyze verify "$work/ferry.service" >"$work/verify.out" 2>&1 && [ ! -s "$work/verify.out" ]; then
			ok "systemd-analyze verify (ExecStart=$bin)"
		else
			fail "systemd-analyze verify:"
			sed 's/^/    /' "$work/verify.out"
		fi
		if systemd-analyze security --offline=true "$work/probe.service" >/dev/null 2>&1; then
			score="$(systemd-analyze security --offline=true "$work/ferry.service" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')"
			if systemd-analyze security --offline=true --threshold="$SECURITY_THRESHOLD" "$work/ferry.service" >/dev/null 2>&1; then
				ok "systemd-analyze security: exposure $score (at most $SECURITY_THRESHOLD/10)"
			else
				fail "systemd-analyze security: exposure $score, above $SECURITY_THRESHOLD/10"
			fi
		else
			echo "skip systemd-analyze security --offline is not supported by this systemd"
		fi
	fi
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
