#!/usr/bin/env bash
# Pins the OpenWrt feed package (packaging/openwrt/ferry/Makefile) to a commit:
# sets PKG_SOURCE_VERSION to it and PKG_MIRROR_HASH to the sha256 of the
# source tarball OpenWrt's download step makes of that commit.
# Usage: scripts/openwrt-pin.sh [--print] COMMIT
#   --print: only print the tarball's name and hash; change nothing.
#
# The tarball is made as include/download.mk's git method (rawgit) makes it
# on OpenWrt 25.12, from this clone instead of a fresh one:
#   - `git archive` of the commit (so .gitattributes' export-ignore and
#     export-subst apply, core.abbrev 8), unpacked under umask 022 as the
#     unprivileged build user unpacks it, into ferry-$(PKG_VERSION)/
#     (ferry has no submodules: nothing is added after);
#   - GNU tar --numeric-owner --owner=0 --group=0 --mode=a-s --sort=name
#     --mtime=@<commit time>, then zstd -T0 --ultra -20, as ferry-$(PKG_VERSION).tar.zst.
# The hash equals OpenWrt's only if this machine's GNU tar and zstd write the
# same bytes as the buildroot's host tools (OpenWrt builds its own zstd): if
# `make package/ferry/download V=s` then reports a mismatch, take its hash
# (`make package/ferry/check FIXUP=1` writes it).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MK="$ROOT/packaging/openwrt/ferry/Makefile"
print=0
[ "${1:-}" = --print ] && { print=1; shift; }
[ $# -eq 1 ] || { echo "usage: $0 [--print] COMMIT" >&2; exit 2; }
commit="$(git -C "$ROOT" rev-parse --verify "$1^{commit}")"
for t in tar zstd sha256sum; do command -v $t >/dev/null || { echo "openwrt-pin: $t is missing" >&2; exit 1; }; done

name="$(sed -n 's/^PKG_NAME:=//p' "$MK")"
version="$(sed -n 's/^PKG_VERSION:=//p' "$MK")"
subdir="$name-$version"
file="$subdir.tar.zst"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
ts="@$(git -C "$ROOT" log -1 --format=%ct "$commit")"
git -C "$ROOT" -c core.abbrev=8 archive --format=tar "$commit" >"$work/$subdir.tar.git"
mkdir "$work/$subdir"
# As a user, not root: modes from the archive less umask 022, our ownership.
(umask 022 && tar -C "$work/$subdir" --no-same-permissions --no-same-owner -xf "$work/$subdir.tar.git")
(cd "$work" && tar --numeric-owner --owner=0 --group=0 --mode=a-s --sort=name --mtime="$ts" -c "$subdir" |
	zstd -q -T0 --ultra -20 -c >"$file")
hash="$(sha256sum "$work/$file" | cut -d' ' -f1)"

if [ "$print" = 1 ]; then
	echo "$file $hash"
	exit 0
fi
sed -i -e "s/^PKG_SOURCE_VERSION:=.*/PKG_SOURCE_VERSION:=$commit/" -e "s/^PKG_MIRROR_HASH:=.*/PKG_MIRROR_HASH:=$hash/" "$MK"
echo "openwrt-pin: $MK pinned to $commit ($file, sha256 $hash)"
