package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// deviceTree writes the files a board would have under fake roots and
// returns the --path flags pointing at them.
func deviceTree(t *testing.T, files map[string]string) []string {
	t.Helper()
	root := t.TempDir()
	for path, content := range files {
		full := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return []string{"--path.rootfs=" + filepath.Join(root, "root"), "--path.sysfs=" + filepath.Join(root, "sys"), "--path.procfs=" + filepath.Join(root, "proc")}
}

func TestExternalLabelsFromTheDevice(t *testing.T) {
	paths := deviceTree(t, map[string]string{
		"root/etc/machine-id":                        "4f2a9c0d1e8b4a7c9d3e6f1a2b3c4d5e\n",
		"sys/firmware/devicetree/base/serial-number": "10000000abcdef01\x00",
		"sys/class/net/eth0/address":                 "dc:a6:32:01:02:03\n",
		"proc/sys/kernel/hostname":                   "OpenWrt\n",
		"root/etc/ferry/labels":                      "# set at the factory\nsite = depot-4\n\nfleet=north\n",
		"root/etc/ferry/asset":                       "A-1234\nsecond line ignored\n",
	})
	root := strings.TrimPrefix(paths[0], "--path.rootfs=")
	cfg := mustParse(t, append(paths,
		"--external-label-from=device=serial",
		"--external-label-from=machine=machine-id",
		"--external-label-from=mac=mac:eth0",
		"--external-label-from=host=hostname",
		"--external-label-from=asset=file:"+filepath.Join(root, "etc/ferry/asset"),
		"--external-label-file="+filepath.Join(root, "etc/ferry/labels"),
		"--external-label=fleet=south", // the flag wins over the file
	)...)
	want := labels.FromStrings("device", "10000000abcdef01", "machine", "4f2a9c0d1e8b4a7c9d3e6f1a2b3c4d5e",
		"mac", "dc:a6:32:01:02:03", "host", "OpenWrt", "asset", "A-1234", "site", "depot-4", "fleet", "south")
	if !labels.Equal(cfg.ExternalLabels, want) {
		t.Errorf("external labels\n %s\nwant\n %s", cfg.ExternalLabels, want)
	}
}

func TestExternalLabelsFromTheDeviceErrors(t *testing.T) {
	paths := deviceTree(t, map[string]string{
		"root/etc/machine-id":        "uninitialized\n",
		"sys/class/net/eth0/address": "\n",
		"root/etc/ferry/labels":      "site depot-4\n",
	})
	root := strings.TrimPrefix(paths[0], "--path.rootfs=")
	for _, tc := range []struct {
		arg, want string
	}{
		{"--external-label-from=device=serial", "serial-number"},
		{"--external-label-from=machine=machine-id", "placeholder"},
		{"--external-label-from=mac=mac:eth0", "empty"},
		{"--external-label-from=mac=mac:../../etc", "interface name"},
		{"--external-label-from=x=dmi", "unknown source"},
		{"--external-label-file=" + filepath.Join(root, "etc/ferry/labels"), ":1: want NAME=VALUE"},
	} {
		p := parseArgs(t, append(paths, tc.arg)...)
		if p.parseErr != nil {
			t.Errorf("%s: parse: %v", tc.arg, p.parseErr)
			continue
		}
		if p.finishErr == nil || !strings.Contains(p.finishErr.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.arg, p.finishErr, tc.want)
		}
	}
	if p := parseArgs(t, "--external-label-from=device"); p.parseErr == nil {
		t.Error("--external-label-from without a source was accepted")
	}
}
