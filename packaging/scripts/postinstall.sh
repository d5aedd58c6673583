#!/bin/sh
# Post-install script for the ferry deb, rpm and ipk packages.
# Creates the system user "ferry" and gives it the buffer directory.
# Safe to run again on upgrade: nothing is created twice.
set -e

STATE_DIR=/var/lib/ferry

if ! id ferry >/dev/null 2>&1; then
    if command -v useradd >/dev/null 2>&1; then
        # Reuse a group "ferry" left over from an earlier install;
        # otherwise let useradd create it (-U).
        if getent group ferry >/dev/null 2>&1; then
            group_opt="-g ferry"
        else
            group_opt="-U"
        fi
        # shellcheck disable=SC2086
        useradd --system --no-create-home --home-dir "$STATE_DIR" \
            --shell /usr/sbin/nologin $group_opt ferry
    else
        # Minimal systems (e.g. busybox without shadow tools): leave it to
        # the operator rather than fail the whole install.
        echo "ferry: useradd not found; create the user 'ferry' and chown $STATE_DIR by hand" >&2
    fi
fi

mkdir -p "$STATE_DIR"
if id ferry >/dev/null 2>&1; then
    chown "ferry:$(id -gn ferry)" "$STATE_DIR"
fi
chmod 0750 "$STATE_DIR"

# Make systemd see a new or changed unit file. Not enabled or started here:
# the operator edits /etc/ferry/ferry.yml first.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload || true
fi

exit 0
