# Stand-in for OpenWrt's include/package.mk (see README.md). PKG_BUILD_DIR is
# the source tree under test. BuildPackage gives three targets:
#   compile   runs $(Build/Compile) as OpenWrt's compile step would;
#   install   runs Package/NAME/install into $(PKG_INSTALL_ROOT);
#   userid    prints the package definition's USERID.
PKG_ASLR_PIE?=1
PKG_ASLR_PIE_REGULAR?=0
INSTALL_DIR:=install -d -m0755
INSTALL_BIN:=install -m0755
INSTALL_CONF:=install -m0600
INSTALL_DATA:=install -m0644

define BuildPackage
$(eval $(Package/$(1)))
.PHONY: compile install userid
compile:
	$(Build/Compile)
install:
	$(call Package/$(1)/install,$(PKG_INSTALL_ROOT))
userid:
	@echo '$(USERID)'
endef
