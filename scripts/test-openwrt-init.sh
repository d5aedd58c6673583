#!/bin/sh
# Tests packaging/openwrt/ferry/files/ferry.init, the procd init script.
#
# Runs the script under busybox sh (the shell of OpenWrt) the way
# /etc/rc.common does: define the helper functions, source the script, call
# start_service and service_triggers. The procd API (procd_open_instance,
# procd_set_param, ...) and UCI's shell API (config_load, config_get,
# config_get_bool, config_list_foreach) are stubs defined here; the stub
# config_load reads a per-case UCI file by defining config/option/list as
# functions and sourcing it, as /lib/functions.sh does with `uci export`.
# Each case asserts the exact ferry command line and the procd parameters.
#
# Needs busybox (Debian package busybox): installed when missing; with
# CI=true a missing busybox fails the run, otherwise the test skips.
# FERRY=path/to/ferry additionally checks that every flag the init script
# emits is one that `ferry --help` documents.
set -eu

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
INIT="${FERRY_INIT:-$ROOT/packaging/openwrt/ferry/files/ferry.init}"
SHIPPED_CONFIG="$ROOT/packaging/openwrt/ferry/files/ferry.config"

if ! command -v busybox >/dev/null 2>&1; then
	echo "test-openwrt-init: installing busybox"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	if ! { DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq busybox >/dev/null 2>&1 ||
		{ $sudo apt-get update -qq >/dev/null 2>&1 &&
			DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq busybox >/dev/null 2>&1; }; }; then
		if [ "${CI:-}" = "true" ]; then
			echo "test-openwrt-init: FAIL: busybox is missing and could not be installed" >&2
			exit 1
		fi
		echo "test-openwrt-init: SKIP: busybox is missing and could not be installed (fails under CI=true)" >&2
		exit 0
	fi
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT INT TERM

# The harness: sourced by busybox sh for each case.
cat >"$WORK/harness.sh" <<'HARNESS'
# --- stub UCI (the subset of /lib/functions.sh that ferry.init uses) ---
_sec=
config() { _sec="$2"; }
option() { eval "CONFIG_${_sec}_$1=\$2"; }
list() {
	local n
	eval "n=\${CONFIG_${_sec}_$1_LENGTH:-0}"
	n=$((n + 1))
	eval "CONFIG_${_sec}_$1_ITEM$n=\$2"
	eval "CONFIG_${_sec}_$1_LENGTH=$n"
}
config_load() {
	echo "config_load $1"
	. "$UCI_DIR/$1"
}
# Like the real one: an empty value counts as unset.
config_get() { eval "$1=\${CONFIG_$2_$3:-\$4}"; }
config_get_bool() {
	local _v
	config_get _v "$2" "$3" "$4"
	case "$_v" in
	1 | on | true | yes | enabled) _v=1 ;;
	0 | off | false | no | disabled) _v=0 ;;
	*) _v="$4" ;;
	esac
	eval "$1=\$_v"
}
config_list_foreach() {
	local sec="$1" opt="$2" fn="$3" n i=1 v
	shift 3
	eval "n=\${CONFIG_${sec}_${opt}_LENGTH:-0}"
	while [ "$i" -le "$n" ]; do
		eval "v=\$CONFIG_${sec}_${opt}_ITEM$i"
		"$fn" "$v" "$@"
		i=$((i + 1))
	done
}
uci() {
	if [ "$*" = "-q get system.@system[0].hostname" ] && [ -n "${TEST_UCI_HOSTNAME:-}" ]; then
		echo "$TEST_UCI_HOSTNAME"
		return 0
	fi
	return 1
}

# --- stub procd API: prints what procd would be told ---
_cmd=
_quote() {
	case "$1" in
	*[!A-Za-z0-9_./:=@%+,-]*) printf "'%s'" "$1" ;;
	*) printf '%s' "$1" ;;
	esac
}
_add_cmd() {
	local a
	for a in "$@"; do _cmd="${_cmd:+$_cmd }$(_quote "$a")"; done
}
procd_open_instance() { echo "open_instance $*"; _cmd=; }
procd_set_param() {
	local k="$1"
	shift
	if [ "$k" = command ]; then _cmd=; _add_cmd "$@"; return; fi
	echo "set $k $*"
}
procd_append_param() {
	local k="$1"
	shift
	if [ "$k" = command ]; then _add_cmd "$@"; return; fi
	echo "append $k $*"
}
procd_close_instance() { echo "command $_cmd"; echo "close_instance"; }
procd_add_reload_trigger() { echo "reload_trigger $*"; }
# The buffer directory is made and given to the ferry user: logged, not done.
mkdir() { echo "mkdir $*" >>"$UCI_DIR/fs.log"; }
chown() { echo "chown $*" >>"$UCI_DIR/fs.log"; }
chmod() { echo "chmod $*" >>"$UCI_DIR/fs.log"; }
# rc.common's own start and stop, as seen by reload_service.
start() { echo "rc.common start"; }
stop() { echo "rc.common stop"; }

# --- what rc.common does: source the script, run the action ---
. "$INIT"
hostname_file="$TEST_HOSTNAME_FILE"
case "$ACTION" in
start)
	start_service
	service_triggers
	;;
reload)
	# rc.common: reload_service if the script has one, else start again
	# (procd then restarts or signals the instance).
	if type reload_service >/dev/null 2>&1; then reload_service; else start_service; fi
	;;
esac
HARNESS

passed=0
failed=0
case_no=0
ALL_OUTPUT="$WORK/all-output"
: >"$ALL_OUTPUT"

# run_case NAME UCI_FILE UCI_HOSTNAME HOSTNAME_FILE_CONTENT ACTION EXPECTED
run_case() {
	name="$1"
	case_no=$((case_no + 1))
	dir="$WORK/case$case_no"
	mkdir -p "$dir"
	cp "$2" "$dir/ferry"
	printf '%s\n' "$4" >"$dir/hostname"
	printf '%s\n' "$6" >"$dir/expected"
	if ! UCI_DIR="$dir" INIT="$INIT" TEST_UCI_HOSTNAME="$3" \
		TEST_HOSTNAME_FILE="$dir/hostname" ACTION="$5" \
		busybox sh "$WORK/harness.sh" >"$dir/got" 2>"$dir/stderr"; then
		echo "FAIL $name: the init script exited non-zero"
		sed 's/^/    /' "$dir/stderr"
		failed=$((failed + 1))
		return
	fi
	cat "$dir/got" >>"$ALL_OUTPUT"
	if cmp -s "$dir/expected" "$dir/got"; then
		echo "ok   $name"
		passed=$((passed + 1))
	else
		echo "FAIL $name: procd was told something else (- expected, + got)"
		diff -u "$dir/expected" "$dir/got" | tail -n +3 | sed 's/^/    /'
		failed=$((failed + 1))
	fi
	# Where ferry is started, its buffer directory is made and owned by ferry.
	sp="$(sed -n 's/^command .*--storage\.path=\([^ ]*\).*/\1/p' "$dir/got")"
	if [ -n "$sp" ]; then
		if [ "$(cat "$dir/fs.log" 2>/dev/null)" = "mkdir -p $sp
chown ferry:ferry $sp
chmod 0750 $sp" ]; then
			echo "ok   $name: $sp made, owned by ferry"
			passed=$((passed + 1))
		else
			echo "FAIL $name: $sp not made and given to ferry: $(cat "$dir/fs.log" 2>/dev/null)"
			failed=$((failed + 1))
		fi
	fi
	if [ -n "${EXPECT_STDERR:-}" ]; then
		if grep -qF "$EXPECT_STDERR" "$dir/stderr"; then
			echo "ok   $name: says \"$EXPECT_STDERR\""
			passed=$((passed + 1))
		else
			echo "FAIL $name: stderr lacks \"$EXPECT_STDERR\"; it was:"
			sed 's/^/    /' "$dir/stderr"
			failed=$((failed + 1))
		fi
	fi
}

uci_file() { # uci_file NAME: write stdin to a UCI file, print its path
	cat >"$WORK/$1.uci"
	echo "$WORK/$1.uci"
}

TAIL='set respawn 3600 5 5
set stdout 1
set stderr 1
set user ferry
set group ferry
set no_new_privs 1
set reload_signal HUP'

# 1. The shipped /etc/config/ferry; hostname from /etc/config/system.
EXPECT_STDERR='' run_case "defaults (shipped config)" "$SHIPPED_CONFIG" router-01 ignored start "config_load ferry
open_instance 
$TAIL
command /usr/bin/ferry --storage.path=/srv/ferry --storage.max-size=8MiB --scrape.interval=15s --external-label=device=router-01 --instance=router-01 --web.listen-address=127.0.0.1:9391
close_instance
reload_trigger ferry"

# 2. The same without a hostname in /etc/config/system: the kernel's.
EXPECT_STDERR='' run_case "defaults, hostname from /proc/sys/kernel/hostname" "$SHIPPED_CONFIG" "" gw-7 start "config_load ferry
open_instance 
$TAIL
command /usr/bin/ferry --storage.path=/srv/ferry --storage.max-size=8MiB --scrape.interval=15s --external-label=device=gw-7 --instance=gw-7 --web.listen-address=127.0.0.1:9391
close_instance
reload_trigger ferry"

# 3. A nearly empty section: only what the init script itself must add.
EXPECT_STDERR='' run_case "empty section" "$(uci_file empty <<'EOF'
config ferry 'main'
EOF
)" router-01 ignored start "config_load ferry
open_instance 
$TAIL
command /usr/bin/ferry --storage.path=/srv/ferry --external-label=device=router-01 --instance=router-01
close_instance
reload_trigger ferry"

# 4. Remote write, a fixed device id, more labels (one with a space), a
#    scrape target; a label without '=' is ignored and said so.
EXPECT_STDERR="ignoring external_label 'nolabel'" run_case "remote write + labels" "$(uci_file rw <<'EOF'
config ferry 'main'
	option enabled '1'
	option storage_path '/srv/ferry'
	option remote_write_url 'http://10.0.0.5:9090/api/v1/write'
	option scrape_interval '30s'
	option device 'truck-12'
	list external_label 'site=Main Street'
	list external_label 'fleet=north'
	list external_label 'nolabel'
	list scrape_target 'myapp=127.0.0.1:9101'
	list scrape_target '127.0.0.1:9100'
	option remote_write_username 'truck-12'
	option remote_write_password_file '/etc/ferry/password'
	option remote_write_ca_file '/etc/ferry/ca.pem'
EOF
)" router-01 ignored start "config_load ferry
open_instance 
$TAIL
command /usr/bin/ferry --storage.path=/srv/ferry --remote-write.url=http://10.0.0.5:9090/api/v1/write --remote-write.basic-auth.username=truck-12 --remote-write.basic-auth.password-file=/etc/ferry/password --remote-write.tls.ca-file=/etc/ferry/ca.pem --scrape.interval=30s --external-label=device=truck-12 --instance=truck-12 '--external-label=site=Main Street' --external-label=fleet=north --scrape.target=myapp=127.0.0.1:9101 --scrape.target=127.0.0.1:9100
close_instance
reload_trigger ferry"

# 5. Collectors off (and one on); a name that is not a collector name is
#    ignored rather than passed on.
EXPECT_STDERR="ignoring collector name 'cpu;reboot'" run_case "collectors off" "$(uci_file coll <<'EOF'
config ferry 'main'
	list collector_disable 'cpu'
	list collector_disable 'loadavg'
	list collector_disable 'cpu;reboot'
	list collector_enable 'meminfo'
EOF
)" router-01 ignored start "config_load ferry
open_instance 
$TAIL
command /usr/bin/ferry --storage.path=/srv/ferry --external-label=device=router-01 --instance=router-01 --collector.meminfo --no-collector.cpu --no-collector.loadavg
close_instance
reload_trigger ferry"

# 6. Custom storage on a USB stick, slower commits, endpoints off, debug
#    log, a YAML file (read again on reload, at SIGHUP).
EXPECT_STDERR='' run_case "custom storage" "$(uci_file storage <<'EOF'
config ferry 'main'
	option enabled 'yes'
	option storage_path '/mnt/sda1/ferry'
	option storage_max_size '256MiB'
	option storage_sync_interval '5m'
	option listen_address 'none'
	option log_level 'debug'
	option config_file '/etc/ferry/ferry.yml'
EOF
)" router-01 ignored start "config_load ferry
open_instance 
$TAIL
command /usr/bin/ferry --storage.path=/mnt/sda1/ferry --storage.max-size=256MiB --storage.sync-interval=5m --external-label=device=router-01 --instance=router-01 --web.listen-address= --log.level=debug --config.file=/etc/ferry/ferry.yml
close_instance
reload_trigger ferry"

# 7. Every option of the shipped file (commented out there), set: each
#    reaches ferry as its flag. The check after the cases makes sure this
#    case names every option the shipped file documents; a header without
#    '=' is ignored and said so.
EXPECT_STDERR="ignoring remote_write_header 'broken'" run_case "every option" "$(uci_file every <<'EOF'
config ferry 'main'
	option enabled '1'
	option storage_path '/mnt/sda1/ferry'
	option storage_max_size '512MB'
	option storage_sync_interval '5m'
	option storage_thin '1'
	option remote_write_url 'https://mimir.example/api/v1/push'
	option remote_write_bearer_token_file '/etc/ferry/token'
	option remote_write_username 'router-01'
	option remote_write_password_file '/etc/ferry/password'
	option remote_write_ca_file '/etc/ferry/ca.pem'
	option remote_write_cert_file '/etc/ferry/client.pem'
	option remote_write_key_file '/etc/ferry/client.key'
	option remote_write_server_name 'mimir.internal'
	option remote_write_insecure_skip_verify 'no'
	option remote_write_proxy_url 'http://proxy.lan:3128'
	list remote_write_header 'X-Scope-OrgID=fleet'
	list remote_write_header 'broken'
	option remote_write_timeout '20s'
	option remote_write_min_backoff '2s'
	option remote_write_max_backoff '1m'
	option remote_write_max_samples_per_send '2000'
	option remote_write_max_sample_age '1h'
	option remote_write_max_bytes_per_second '8KiB'
	option remote_write_max_bytes_per_day '20MiB'
	option remote_write_fresh_first 'yes'
	option remote_write_protocol '2'
	option remote_write_metadata_send '0'
	option remote_write_metadata_send_interval '5m'
	option remote_write_reconnect_jitter '1m'
	option remote_write_backlog_bytes_per_second '16KiB'
	option scrape_interval '30s'
	option device 'truck-12'
	option instance_from 'mac:eth0'
	list external_label 'site=berlin'
	list external_label_from 'serial=serial'
	option external_label_file '/etc/ferry/labels'
	option clock_require_sync '1'
	list scrape_target 'myapp=127.0.0.1:9101'
	list collector_disable 'loadavg'
	list collector_enable 'wifi'
	option listen_address '0.0.0.0:9391'
	option log_level 'warn'
	option config_file '/etc/ferry/ferry.yml'
EOF
)" router-01 ignored start "config_load ferry
open_instance 
$TAIL
command /usr/bin/ferry --storage.path=/mnt/sda1/ferry --storage.max-size=512MB --storage.sync-interval=5m --storage.thin --remote-write.url=https://mimir.example/api/v1/push --remote-write.bearer-token-file=/etc/ferry/token --remote-write.basic-auth.username=router-01 --remote-write.basic-auth.password-file=/etc/ferry/password --remote-write.tls.ca-file=/etc/ferry/ca.pem --remote-write.tls.cert-file=/etc/ferry/client.pem --remote-write.tls.key-file=/etc/ferry/client.key --remote-write.tls.server-name=mimir.internal --remote-write.tls.insecure-skip-verify=false --remote-write.proxy-url=http://proxy.lan:3128 --remote-write.header=X-Scope-OrgID=fleet --remote-write.timeout=20s --remote-write.min-backoff=2s --remote-write.max-backoff=1m --remote-write.max-samples-per-send=2000 --remote-write.max-sample-age=1h --remote-write.max-bytes-per-second=8KiB --remote-write.max-bytes-per-day=20MiB --remote-write.fresh-first --remote-write.protocol=2 --remote-write.metadata.send=false --remote-write.metadata.send-interval=5m --remote-write.reconnect-jitter=1m --remote-write.backlog-bytes-per-second=16KiB --scrape.interval=30s --external-label=device=truck-12 --instance-from=mac:eth0 --external-label=site=berlin --external-label-from=serial=serial --external-label-file=/etc/ferry/labels --clock.require-sync --scrape.target=myapp=127.0.0.1:9101 --collector.wifi --no-collector.loadavg --web.listen-address=0.0.0.0:9391 --log.level=warn --config.file=/etc/ferry/ferry.yml
close_instance
reload_trigger ferry"

# 8. The instance option wins over instance_from.
EXPECT_STDERR='' run_case "instance option" "$(uci_file inst <<'EOF'
config ferry 'main'
	option instance 'SN-00042'
	option instance_from 'serial'
EOF
)" router-01 ignored start "config_load ferry
open_instance 
$TAIL
command /usr/bin/ferry --storage.path=/srv/ferry --external-label=device=router-01 --instance=SN-00042
close_instance
reload_trigger ferry"

# 9. Disabled: no instance, the trigger stays (enabling it later works).
EXPECT_STDERR="disabled in /etc/config/ferry" run_case "disabled" "$(uci_file off <<'EOF'
config ferry 'main'
	option enabled '0'
	option remote_write_url 'http://10.0.0.5:9090/api/v1/write'
EOF
)" router-01 ignored start "config_load ferry
reload_trigger ferry"

# 10. Reload hands procd the same instance again: procd restarts ferry if
# the command line changed, and otherwise sends the reload signal, SIGHUP.
EXPECT_STDERR='' run_case "reload: the instance again, with SIGHUP as reload signal" "$SHIPPED_CONFIG" router-01 ignored reload "config_load ferry
open_instance 
$TAIL
command /usr/bin/ferry --storage.path=/srv/ferry --storage.max-size=8MiB --scrape.interval=15s --external-label=device=router-01 --instance=router-01 --web.listen-address=127.0.0.1:9391
close_instance"

# Every option the shipped file documents (set or commented out) is set in
# a case ("every option", and "instance option" for the one excluding
# instance_from), so each is checked to reach ferry above.
untested=""
for opt in $(sed -n 's/^[[:space:]]*#\{0,1\}[[:space:]]*\(option\|list\)[[:space:]]\{1,\}\([a-z_]*\).*/\2/p' "$SHIPPED_CONFIG" | sort -u); do
	cat "$WORK"/*.uci | grep -qE "^[[:space:]]*(option|list)[[:space:]]+$opt[[:space:]]" || untested="$untested $opt"
done
if [ -z "$untested" ]; then
	echo "ok   every option of the shipped /etc/config/ferry is checked"
	passed=$((passed + 1))
else
	echo "FAIL options of the shipped /etc/config/ferry no case sets:$untested"
	failed=$((failed + 1))
fi

# Every flag the script emitted exists in ferry (when a binary is given).
if [ -n "${FERRY:-}" ]; then
	help="$("$FERRY" --help 2>&1 || true)"
	missing=""
	for flag in $(grep '^command ' "$ALL_OUTPUT" | tr ' ' '\n' | tr -d "'" | sed -n 's/^\(--[a-z.-]*\).*/\1/p' | sed 's/=$//' | sort -u); do
		case "$flag" in
		--no-collector.* | --collector.*) f="$flag" ;;
		*) f="$flag " ;;
		esac
		# A boolean flag is listed as --NAME[=true|false].
		printf '%s\n' "$help" | grep -qF -- "$flag[=true|false]" && continue
		printf '%s\n' "$help" | grep -qF -- "$f" || missing="$missing $flag"
	done
	if [ -z "$missing" ]; then
		echo "ok   every emitted flag is in \`ferry --help\`"
		passed=$((passed + 1))
	else
		echo "FAIL flags not in \`ferry --help\`:$missing"
		failed=$((failed + 1))
	fi
fi

# Every flag of ferry has a UCI option (when a binary is given), but these:
#   --path.*: OpenWrt mounts /proc, /sys and / where ferry looks for them;
#   --collector.*, --no-collector.*: the lists collector_enable and
#   collector_disable, which take any collector's name.
if [ -n "${FERRY:-}" ]; then
	emitted="$(grep '^command ' "$ALL_OUTPUT" | tr ' ' '\n' | tr -d "'" | sed -n 's/^--\([a-z.-]*\).*/\1/p' | sort -u)"
	unmapped=""
	for flag in $("$FERRY" --help 2>&1 | sed -n 's/^ *--\([a-z][a-z.-]*\).*/\1/p' | sort -u); do
		case "$flag" in
		path.* | collector.* | no-collector.* | help) continue ;;
		esac
		printf '%s\n' "$emitted" | grep -qxF -- "$flag" || unmapped="$unmapped --$flag"
	done
	if [ -z "$unmapped" ]; then
		echo "ok   every flag of \`ferry --help\` has a UCI option"
		passed=$((passed + 1))
	else
		echo "FAIL flags without a UCI option:$unmapped"
		failed=$((failed + 1))
	fi
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
