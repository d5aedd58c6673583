package host

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/ferry-agent/ferry/collectors"
)

var (
	hwmonChipNamesDesc = collectors.NewDesc("node_hwmon_chip_names",
		"Annotation metric for human-readable chip names", collectors.Gauge, "chip", "chip_name")
	hwmonTempDesc = collectors.NewDesc("node_hwmon_temp_celsius",
		"Hardware monitor for temperature (input)", collectors.Gauge, "chip", "sensor")
)

var hwmonInvalidChars = regexp.MustCompile(`[^a-z0-9:_]`)

// hwmonCollector reads the temperature inputs of /sys/class/hwmon
// (Documentation/hwmon/sysfs-interface.rst): tempN_input in millidegrees.
type hwmonCollector struct{ dir string }

func newHwmon(p collectors.Paths) collectors.Collector {
	return &hwmonCollector{dir: filepath.Join(p.SysFS, "class", "hwmon")}
}

type hwmonTemp struct {
	chip, sensor string
	n            int
	celsius      float64
}

func (c *hwmonCollector) Collect(_ context.Context, out *collectors.Collection) error {
	entries, err := os.ReadDir(c.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // a board without hardware monitors: nothing to report, nothing wrong
	}
	if err != nil {
		return fmt.Errorf("hwmon: %w", err)
	}
	type chip struct{ chip, name string }
	var chips []chip
	var temps []hwmonTemp
	for _, e := range entries {
		dir := filepath.Join(c.dir, e.Name())
		id := hwmonChip(dir)
		if name, err := os.ReadFile(filepath.Join(dir, "name")); err == nil {
			chips = append(chips, chip{id, strings.TrimSpace(string(name))})
		}
		// The sensor files are in the hwmon directory, or on old kernels
		// in its device directory.
		for _, d := range []string{dir, filepath.Join(dir, "device")} {
			inputs, _ := filepath.Glob(filepath.Join(d, "temp*_input"))
			for _, in := range inputs {
				sensor := strings.TrimSuffix(filepath.Base(in), "_input")
				n, err := strconv.Atoi(strings.TrimPrefix(sensor, "temp"))
				if err != nil {
					continue
				}
				raw, err := os.ReadFile(in)
				if err != nil {
					continue // a sensor that cannot be read now (EAGAIN, EIO): left out
				}
				milli, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
				if err != nil {
					return fmt.Errorf("hwmon: %s: %w", in, err)
				}
				temps = append(temps, hwmonTemp{chip: id, sensor: sensor, n: n, celsius: float64(milli) / 1000})
			}
			if len(inputs) > 0 {
				break
			}
		}
	}
	sort.Slice(chips, func(i, j int) bool { return chips[i].chip < chips[j].chip })
	sort.Slice(temps, func(i, j int) bool {
		if temps[i].chip != temps[j].chip {
			return temps[i].chip < temps[j].chip
		}
		return temps[i].n < temps[j].n
	})
	for _, ch := range chips {
		out.Add(hwmonChipNamesDesc, 1, ch.chip, ch.name)
	}
	for _, t := range temps {
		out.Add(hwmonTempDesc, t.celsius, t.chip, t.sensor)
	}
	return nil
}

// hwmonChip names a chip as node_exporter does, by a stable path rather
// than the hwmonN number: the device's bus type and name
// ("platform_cpu_thermal", "i2c_0_0048"), else the chip's name file, else
// the directory's name.
func hwmonChip(dir string) string {
	if dev, err := filepath.EvalSymlinks(filepath.Join(dir, "device")); err == nil {
		prefix, name := filepath.Split(dev)
		_, typ := filepath.Split(strings.TrimRight(prefix, "/"))
		name, typ = cleanHwmonName(name), cleanHwmonName(typ)
		if typ != "" && name != "" {
			return typ + "_" + name
		}
		if name != "" {
			return name
		}
	}
	if raw, err := os.ReadFile(filepath.Join(dir, "name")); err == nil {
		if name := cleanHwmonName(string(raw)); name != "" {
			return name
		}
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	return cleanHwmonName(filepath.Base(dir))
}

func cleanHwmonName(s string) string {
	return strings.Trim(hwmonInvalidChars.ReplaceAllLiteralString(strings.ToLower(strings.TrimSpace(s)), "_"), "_")
}
