package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/ferry-agent/ferry/collectors"
)

// An image flashed to a thousand devices carries one configuration; each
// device still needs labels of its own. These are read on the device, from
// sources every such image has, without running a command.

// identitySources name what --external-label-from reads.
const identitySources = "machine-id, serial, hostname, mac:IFACE or file:PATH"

// maxIdentityValue bounds a label value read from a device file.
const maxIdentityValue = 256

// readIdentity returns the value of source on the device whose roots are
// paths.
func readIdentity(source string, paths collectors.Paths) (string, error) {
	candidates, err := sourceFiles(source, paths)
	if err != nil {
		return "", err
	}
	var errs []error
	for _, path := range candidates {
		v, err := firstLine(path)
		if err == nil && (v == "uninitialized" || v == "00:00:00:00:00:00") {
			err = fmt.Errorf("%s: %q is a placeholder, not an identity", path, v)
		}
		if err == nil {
			return v, nil
		}
		errs = append(errs, err)
	}
	return "", errors.Join(errs...)
}

// checkSource reports whether source names an identity source, without
// reading it: for check-config, which runs away from the device.
func checkSource(source string) error {
	_, err := sourceFiles(source, collectors.Paths{})
	return err
}

// sourceFiles are the files source is read from, the first that holds a
// value winning.
func sourceFiles(source string, paths collectors.Paths) ([]string, error) {
	kind, arg, _ := strings.Cut(source, ":")
	var candidates []string
	switch kind {
	case "machine-id": // systemd's, or D-Bus's on systems without systemd
		candidates = []string{filepath.Join(paths.RootFS, "etc/machine-id"), filepath.Join(paths.RootFS, "var/lib/dbus/machine-id")}
	case "serial": // the board's (device tree: Raspberry Pi, most ARM boards), else the DMI product's
		candidates = []string{filepath.Join(paths.SysFS, "firmware/devicetree/base/serial-number"), filepath.Join(paths.SysFS, "class/dmi/id/product_serial")}
	case "hostname":
		candidates = []string{filepath.Join(paths.ProcFS, "sys/kernel/hostname")}
	case "mac":
		if arg == "" || strings.ContainsAny(arg, "/.") {
			return nil, fmt.Errorf("mac:IFACE needs an interface name, e.g. mac:eth0")
		}
		candidates = []string{filepath.Join(paths.SysFS, "class/net", arg, "address")}
	case "file":
		if arg == "" {
			return nil, fmt.Errorf("file:PATH needs a path")
		}
		candidates = []string{arg}
	default:
		return nil, fmt.Errorf("unknown source %q: want %s", source, identitySources)
	}
	return candidates, nil
}

// firstLine reads a file's first line, without the NUL that device-tree
// strings end with.
func firstLine(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	line, err := bufio.NewReader(io.LimitReader(f, maxIdentityValue+1)).ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	line = bytes.TrimSpace(bytes.TrimRight(line, "\x00\n"))
	switch {
	case len(line) == 0:
		return "", fmt.Errorf("%s: empty", path)
	case len(line) > maxIdentityValue:
		return "", fmt.Errorf("%s: first line longer than %d bytes", path, maxIdentityValue)
	case !utf8.Valid(line):
		return "", fmt.Errorf("%s: not UTF-8 text", path)
	}
	return string(line), nil
}

// readLabelFile reads NAME=VALUE lines; blank lines and lines starting
// with # are skipped.
func readLabelFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(io.LimitReader(f, maxFileSize))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok {
			return nil, fmt.Errorf("%s:%d: want NAME=VALUE", path, n)
		}
		if err := checkLabel(name, value); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		out[name] = value
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}
