# Stand-in for OpenWrt's rules.mk (see README.md): the variables the ferry
# package and golang-package.mk read. ARCH, CONFIG_* come from the command line.
INCLUDE_DIR:=$(TOPDIR)/include
SCRIPT_DIR:=$(TOPDIR)/scripts
BUILD_DIR?=$(TMP_DIR)/build
STAGING_DIR?=$(TMP_DIR)/staging
STAGING_DIR_HOSTPKG?=$(TMP_DIR)/hostpkg
DL_DIR?=$(TMP_DIR)/dl
SOURCE_DATE_EPOCH?=1700000000
TARGET_CC:=$(ARCH)-openwrt-linux-musl-gcc-does-not-exist
TARGET_CXX:=$(ARCH)-openwrt-linux-musl-g++-does-not-exist
TARGET_CFLAGS:=-Os -pipe
TARGET_CPPFLAGS:=
TARGET_CXXFLAGS:=-Os -pipe
TARGET_LDFLAGS:=-znow -zrelro
HOST_OS:=Linux
HOST_ARCH:=x86_64
empty:=
space:=$(empty) $(empty)
comma:=,
qstrip=$(strip $(subst ",,$(1)))
tolower=$(shell echo '$(1)' | tr A-Z a-z)
