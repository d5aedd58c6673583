#!/bin/sh
# Stand-in for openwrt/packages' lang/golang/golang-build.sh (see README.md):
# `build ARGS...` runs `go install $GO_MOD_ARGS ARGS... TARGETS` in the
# package's source tree and prints that command line first (the test reads
# it); `install_bin DEST` installs what it built.
set -e
cmd=$1
shift
case "$cmd" in
build)
	cd "$BUILD_DIR"
	# shellcheck disable=SC2086
	targets=$(go list $GO_MOD_ARGS $GO_BUILD_PKG)
	mkdir -p "$GO_BUILD_DIR/bin"
	printf 'go-install-env: GOARCH=%s GOARM=%s GOMIPS=%s CGO_ENABLED=%s\n' "$GOARCH" "$GOARM" "$GOMIPS" "$CGO_ENABLED"
	printf 'go-install-arg: %s\n' "$@"
	# shellcheck disable=SC2086
	go install $GO_MOD_ARGS "$@" $targets
	;;
install_bin)
	install -d -m0755 "$1/$GO_INSTALL_BIN_PATH"
	install -m0755 "$GO_BUILD_BIN_DIR"/* "$1/$GO_INSTALL_BIN_PATH/"
	;;
*) echo "golang-build.sh stand-in: unknown command $cmd" >&2; exit 1 ;;
esac
