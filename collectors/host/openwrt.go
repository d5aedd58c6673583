package host

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ferry-agent/ferry/collectors"
)

// openwrtInfoDesc is prometheus-node-exporter-lua's family, which OpenWrt
// router dashboards read: the values of `ubus call system board`, which
// procd takes from the files read below.
var openwrtInfoDesc = collectors.NewDesc("node_openwrt_info",
	"OpenWrt release and board: distribution, release, revision, target, board name, model and SoC.", collectors.Gauge,
	"board_name", "id", "model", "release", "revision", "system", "target")

type openwrtCollector struct{ paths collectors.Paths }

func newOpenWrt(p collectors.Paths) collectors.Collector { return &openwrtCollector{paths: p} }

func (c *openwrtCollector) Collect(_ context.Context, out *collectors.Collection) error {
	path := filepath.Join(c.paths.RootFS, "etc", "openwrt_release")
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // not OpenWrt
	}
	if err != nil {
		return fmt.Errorf("openwrt: %w", err)
	}
	defer f.Close()
	rel, err := parseOSRelease(f) // shell assignments, KEY='value', as os-release
	if err != nil {
		return fmt.Errorf("openwrt: %s: %w", path, err)
	}
	sysinfo := filepath.Join(c.paths.RootFS, "tmp", "sysinfo")
	model := firstLine(filepath.Join(sysinfo, "model"))
	if model == "" {
		model = firstLine(filepath.Join(c.paths.ProcFS, "device-tree", "model"))
	}
	out.Add(openwrtInfoDesc, 1, firstLine(filepath.Join(sysinfo, "board_name")), rel["DISTRIB_ID"], model,
		rel["DISTRIB_RELEASE"], rel["DISTRIB_REVISION"], cpuSystem(filepath.Join(c.paths.ProcFS, "cpuinfo")), rel["DISTRIB_TARGET"])
	return nil
}

// firstLine returns a small file's first line, "" if it cannot be read
// (a board whose platform scripts write no /tmp/sysinfo).
func firstLine(path string) string {
	data, _ := os.ReadFile(path)
	line, _, _ := strings.Cut(string(data), "\n")
	return strings.TrimSpace(strings.Trim(line, "\x00"))
}

// cpuSystem names the SoC as procd does: the value of the first
// "system type" (MIPS), "processor" or "model name" line of /proc/cpuinfo
// that is not a number ("processor : 0" is a CPU's index); "" if none.
func cpuSystem(path string) string {
	data, _ := os.ReadFile(path)
	for _, line := range strings.Split(string(data), "\n") {
		key, value, _ := strings.Cut(line, ":")
		value = strings.TrimSpace(value)
		switch strings.ToLower(strings.TrimSpace(key)) {
		case "system type", "processor", "model name":
			if _, err := strconv.ParseUint(value, 0, 64); err != nil && value != "" {
				return value
			}
		}
	}
	return ""
}
