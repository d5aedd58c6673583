# Stand-in for openwrt/packages' lang/golang/golang-package.mk and
# golang-values.mk (see README.md): how they turn a package's GO_PKG_*
# variables and the target's ARCH/CONFIG_* into `go install` and its
# environment. Written for ferry's tests; not OpenWrt's code.
GO_INCLUDE_DIR:=$(dir $(lastword $(MAKEFILE_LIST)))

unexport GOARCH GOOS GOBIN GOFLAGS GOARM GOMIPS GOPATH GOROOT CGO_ENABLED CC CXX GOTOOLCHAIN

go_arch=$(subst aarch64,arm64,$(subst i386,386,$(subst mipsel,mipsle,$(subst x86_64,amd64,$(1)))))
GO_OS:=linux
GO_ARCH:=$(call go_arch,$(ARCH))
GO_OS_ARCH:=$(GO_OS)_$(GO_ARCH)
GO_HOST_OS_ARCH:=linux_amd64
GO_HOST_TARGET_DIFFERENT:=$(if $(filter $(GO_OS_ARCH),$(GO_HOST_OS_ARCH)),,1)

ifeq ($(GO_ARCH),arm)
  # The FPU named after '+' in CONFIG_CPU_TYPE: none -> 5, vfp/vfpv2 -> 6, else 7.
  GO_TARGET_FPU:=$(word 2,$(subst +,$(space),$(call qstrip,$(CONFIG_CPU_TYPE))))
  GO_ARM:=$(if $(GO_TARGET_FPU),$(if $(filter vfp vfpv2,$(GO_TARGET_FPU)),6,7),5)
else ifneq ($(filter $(GO_ARCH),mips mipsle),)
  GO_MIPS:=$(if $(filter y,$(CONFIG_HAS_FPU)),hardfloat,softfloat)
endif

GO_ARCH_DEPENDS:=@(aarch64||arm||i386||i686||mips||mips64||mips64el||mipsel||powerpc64||riscv64||x86_64)
GO_TARGET_PIE_SUPPORTED:=$(if $(filter $(GO_OS_ARCH),linux_386 linux_amd64 linux_arm linux_arm64 linux_ppc64le linux_riscv64),1)

ifdef CONFIG_PKG_ASLR_PIE_ALL
  ifeq ($(strip $(PKG_ASLR_PIE)),1)
    GO_PKG_ENABLE_PIE:=$(GO_TARGET_PIE_SUPPORTED)
  endif
endif
ifdef CONFIG_PKG_ASLR_PIE_REGULAR
  ifeq ($(strip $(PKG_ASLR_PIE_REGULAR)),1)
    GO_PKG_ENABLE_PIE:=$(GO_TARGET_PIE_SUPPORTED)
  endif
endif

GO_PKG_BUILD_PKG?=$(strip $(GO_PKG))/...
GO_PKG_INSTALL_BIN_PATH?=/usr/bin
GO_PKG_BUILD_DIR=$(TMP_DIR)/go_work/build
GO_PKG_BUILD_BIN_DIR=$(GO_PKG_BUILD_DIR)/bin$(if $(GO_HOST_TARGET_DIFFERENT),/$(GO_OS_ARCH))
GO_BUILD_CACHE_DIR?=$(TMP_DIR)/go-build
GO_MOD_CACHE_DIR?=$(DL_DIR)/go-mod-cache
GO_MOD_ARGS=-modcacherw

GO_PKG_BUILD_CONFIG_VARS= \
	GO_PKG="$(strip $(GO_PKG))" \
	GO_BUILD_PKG="$(strip $(GO_PKG_BUILD_PKG))" \
	GO_INSTALL_BIN_PATH="$(strip $(GO_PKG_INSTALL_BIN_PATH))" \
	BUILD_DIR="$(PKG_BUILD_DIR)" \
	GO_BUILD_DIR="$(GO_PKG_BUILD_DIR)" \
	GO_BUILD_BIN_DIR="$(GO_PKG_BUILD_BIN_DIR)" \
	GO_MOD_ARGS="$(GO_MOD_ARGS)"

GO_PKG_TARGET_VARS= \
	GOOS="$(GO_OS)" \
	GOARCH="$(GO_ARCH)" \
	GOARM="$(GO_ARM)" \
	GOMIPS="$(GO_MIPS)" \
	CGO_ENABLED=1 \
	CC="$(TARGET_CC)" \
	CXX="$(TARGET_CXX)" \
	CGO_CFLAGS="$(TARGET_CFLAGS)" \
	CGO_CPPFLAGS="$(TARGET_CPPFLAGS)" \
	CGO_CXXFLAGS="$(TARGET_CXXFLAGS)" \
	CGO_LDFLAGS="$(TARGET_LDFLAGS)"

GO_PKG_BUILD_VARS= \
	GOPATH="$(GO_PKG_BUILD_DIR)" \
	GOCACHE="$(GO_BUILD_CACHE_DIR)" \
	GOMODCACHE="$(GO_MOD_CACHE_DIR)" \
	GOENV=off \
	GOTOOLCHAIN=local

GO_PKG_VARS= \
	$(GO_PKG_TARGET_VARS) \
	$(GO_PKG_BUILD_VARS)

GO_PKG_DEFAULT_GCFLAGS= \
	$(if $(GO_PKG_ENABLE_SPECTRE),-spectre all)
GO_PKG_DEFAULT_ASMFLAGS= \
	$(if $(GO_PKG_ENABLE_SPECTRE),-spectre all)
GO_PKG_DEFAULT_LDFLAGS= \
	-buildid '$(SOURCE_DATE_EPOCH)' \
	-linkmode external \
	-extldflags '$(patsubst -z%,-Wl$(comma)-z$(comma)%,$(TARGET_LDFLAGS))'
GO_PKG_CUSTOM_LDFLAGS= \
	$(GO_PKG_LDFLAGS) \
	$(patsubst %,-X %,$(GO_PKG_LDFLAGS_X))

GO_PKG_INSTALL_ARGS= \
	-v \
	-buildvcs=false \
	-trimpath \
	-ldflags "all=$(GO_PKG_DEFAULT_LDFLAGS)" \
	$(if $(strip $(GO_PKG_DEFAULT_GCFLAGS)),-gcflags "all=$(GO_PKG_DEFAULT_GCFLAGS)") \
	$(if $(strip $(GO_PKG_DEFAULT_ASMFLAGS)),-asmflags "all=$(GO_PKG_DEFAULT_ASMFLAGS)") \
	$(if $(GO_PKG_ENABLE_PIE),-buildmode pie) \
	$(if $(filter $(GO_ARCH),arm),-installsuffix "v$(GO_ARM)") \
	$(if $(filter $(GO_ARCH),mips mipsle),-installsuffix "$(GO_MIPS)") \
	$(if $(strip $(GO_PKG_GCFLAGS)),-gcflags "$(GO_PKG_GCFLAGS) $(GO_PKG_DEFAULT_GCFLAGS)") \
	$(if $(strip $(GO_PKG_CUSTOM_LDFLAGS)),-ldflags "$(GO_PKG_CUSTOM_LDFLAGS) $(GO_PKG_DEFAULT_LDFLAGS)") \
	$(if $(strip $(GO_PKG_TAGS)),-tags "$(GO_PKG_TAGS)")

# 1: additional arguments for the go command line (optional)
define GoPackage/Build/Compile
	$(GO_PKG_BUILD_CONFIG_VARS) \
	$(GO_PKG_VARS) \
	$(SHELL) $(GO_INCLUDE_DIR)golang-build.sh build $(GO_PKG_INSTALL_ARGS) $(1)
endef

define GoPackage/Package/Install/Bin
	$(GO_PKG_BUILD_CONFIG_VARS) \
	$(SHELL) $(GO_INCLUDE_DIR)golang-build.sh install_bin "$(1)"
endef

ifneq ($(strip $(GO_PKG)),)
  Build/Compile=$(call GoPackage/Build/Compile)
endif

define GoBinPackage
  ifndef Package/$(1)/install
    Package/$(1)/install=$$(call GoPackage/Package/Install/Bin,$$(1))
  endif
endef
