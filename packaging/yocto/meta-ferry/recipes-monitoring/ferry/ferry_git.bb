SUMMARY = "Prometheus-compatible metrics agent for small, often offline devices"
DESCRIPTION = "ferry collects host metrics under node_exporter's names and \
scrapes local exporters, keeps every sample in a size-bounded buffer on disk \
that survives restarts, and ships the backlog with Prometheus remote write \
when the link is back."
HOMEPAGE = "https://github.com/ferry-agent/ferry"
SECTION = "console/utils"

# ferry's own license. The licenses of the Go modules linked into the binary
# are appended by ferry-licenses.inc (generated, see below).
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://src/${GO_IMPORT}/LICENSE;md5=3b83ef96387f14655fc854ddc3c6bd57"

GO_IMPORT = "github.com/ferry-agent/ferry"
GO_INSTALL = "${GO_IMPORT}/cmd/ferry"

SRC_URI = "git://${GO_IMPORT}.git;protocol=https;branch=main;destsuffix=${GO_SRCURI_DESTSUFFIX}"
# The commit built, and the module list and licenses of its go.mod/go.sum:
# all three written by scripts/yocto-modules.py COMMIT in ferry's
# repository (make test checks them: scripts/yocto-modules.py --check).
SRCREV = "ea5215b6248d45a5cebd16d52c4669046c0f8b7f"
PV = "0.1.0+git"

# Go module dependencies are fetched at do_fetch time, not at compile time:
# ferry-go-mods.inc lists every module as a gomod:// SRC_URI entry (bitbake's
# gomod fetcher, with a sha256sum each) and go-mod.bbclass unpacks them into
# GOMODCACHE; do_compile has no network. The files are the ones
# go-mod-update-modules.bbclass would write (`bitbake -c update_modules ferry`
# gives the same, with oe-core's own license names).
require ${BPN}-licenses.inc
require ${BPN}-go-mods.inc
# The release's build flags, generated from ferry's Makefile.
require ${BPN}-release-flags.inc

inherit go-mod go-mod-update-modules systemd useradd

# Built as the release builds it: one static binary, no libc, Go's own
# linker (go.bbclass defaults to cgo on, external linking and PIE).
# Static and not PIE, it has no text relocations for the textrel QA check;
# -buildmode=pie, which go.bbclass appends, would need cgo and the external
# linker on 32-bit ARM.
export CGO_ENABLED = "0"
GOBUILDFLAGS:remove = "-buildmode=pie"
GO_LINUXLOADER = ""
# -s -w (FERRY_LDFLAGS) as the release: the binary is stripped already, so
# there is no ferry-dbg with symbols.
GO_EXTRA_LDFLAGS = "${FERRY_LDFLAGS} -X main.version=${PV} -X main.commit=${SRCREV}"
INSANE_SKIP:${PN} += "already-stripped"

USERADD_PACKAGES = "${PN}"
USERADD_PARAM:${PN} = "--system --no-create-home --home-dir ${localstatedir}/lib/ferry \
                       --shell ${base_sbindir}/nologin --user-group ferry"

SYSTEMD_SERVICE:${PN} = "ferry.service"
# Installed but not started at boot: set remote_write in /etc/ferry/ferry.yml
# first, or set SYSTEMD_AUTO_ENABLE:pn-ferry = "enable" in the image.
SYSTEMD_AUTO_ENABLE:${PN} ?= "disable"

# Only the binary, the unit and the configuration: go.bbclass' do_install
# would also install ferry's Go sources into ${PN}-dev.
do_install() {
    install -d ${D}${bindir}
    install -m 0755 ${B}/${GO_BUILD_BINDIR}/ferry ${D}${bindir}/ferry

    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${S}/src/${GO_IMPORT}/packaging/systemd/ferry.service \
        ${D}${systemd_system_unitdir}/ferry.service

    install -d ${D}${sysconfdir}/ferry
    install -m 0644 ${S}/src/${GO_IMPORT}/packaging/ferry.example.yml \
        ${D}${sysconfdir}/ferry/ferry.yml

    # The buffer (--storage.path); systemd's StateDirectory= would create it
    # too, this gives it the right owner in read-only images as well.
    install -d -m 0750 -o ferry -g ferry ${D}${localstatedir}/lib/ferry
}

FILES:${PN} += "${localstatedir}/lib/ferry"
CONFFILES:${PN} = "${sysconfdir}/ferry/ferry.yml"
