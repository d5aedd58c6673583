#!/bin/sh
# Installs what the power-cut rig needs, as CI would: qemu, busybox (static)
# and e2fsprogs from Debian's packages, and Debian's kernel, downloaded and
# unpacked (not installed) into $1 with the modules the guest loads, in
# load order, listed in $1/modules.list.
set -eu
out=${1:-bin/powercut/kernel}
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo

missing=
command -v qemu-system-x86_64 >/dev/null 2>&1 || missing="$missing qemu-system-x86"
file -L /bin/busybox 2>/dev/null | grep -q 'statically linked' || missing="$missing busybox-static"
command -v mkfs.ext4 >/dev/null 2>&1 || missing="$missing e2fsprogs"
command -v depmod >/dev/null 2>&1 || missing="$missing kmod"
command -v file >/dev/null 2>&1 || missing="$missing file"
if [ -n "$missing" ]; then
	$SUDO apt-get update -qq
	# shellcheck disable=SC2086
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi

if [ ! -s "$out/modules.list" ]; then
	# The package linux-image-amd64 depends on names the current kernel.
	pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
	[ -n "$pkg" ] || { echo "setup.sh: no kernel package behind linux-image-amd64 (apt-get update?)" >&2; exit 1; }
	ver=${pkg#linux-image-}
	rm -rf "$out" && mkdir -p "$out"
	(cd "$out" && apt-get download "$pkg" >/dev/null 2>&1) || (cd "$out" && $SUDO apt-get download "$pkg")
	dpkg-deb -x "$out"/"$pkg"_*.deb "$out"
	rm -f "$out"/*.deb
	depmod -b "$out" "$ver"
	# virtio for the disks, ext4 with what it needs (crc32c through the
	# crypto API, which cannot load modules by itself in the guest).
	for m in crc32c_generic virtio_pci virtio_blk ext4; do
		modprobe -d "$out" -S "$ver" --show-depends "$m"
	done | awk '$1 == "insmod" && !seen[$2]++ {print $2}' | grep -v crc32c-intel > "$out/modules.list.tmp"
	mv "$out/modules.list.tmp" "$out/modules.list"
fi
echo "setup.sh: kernel $(ls "$out"/boot/vmlinuz-*), $(wc -l < "$out/modules.list") modules"
