#!/bin/sh
# Pre-remove script for the ferry deb, rpm and ipk packages.
# On removal, not on upgrade: disable and stop the service, so that it does
# not keep running a deleted binary. The user, /etc/ferry and the buffer in
# /var/lib/ferry stay (the data is the operator's).

case "$1" in
remove | 0) ;; # deb and ipk say "remove"; rpm gives the count left, 0
*) exit 0 ;;
esac

command -v systemctl >/dev/null 2>&1 || exit 0
# disable works without a running systemd (chroots, image builds); stop does not.
systemctl disable ferry.service >/dev/null 2>&1 || true
if [ -d /run/systemd/system ]; then
    systemctl stop ferry.service >/dev/null 2>&1 || true
fi

exit 0
