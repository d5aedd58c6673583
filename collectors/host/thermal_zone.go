package host

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/ferry-agent/ferry/collectors"
)

var thermalZoneTempDesc = collectors.NewDesc("node_thermal_zone_temp",
	"Zone temperature in Celsius", collectors.Gauge, "zone", "type")

type thermalZoneCollector struct{ dir string }

func newThermalZone(p collectors.Paths) collectors.Collector {
	return &thermalZoneCollector{dir: filepath.Join(p.SysFS, "class", "thermal")}
}

func (c *thermalZoneCollector) Collect(_ context.Context, out *collectors.Collection) error {
	entries, err := os.ReadDir(c.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // no thermal framework on this board: nothing wrong
	}
	if err != nil {
		return fmt.Errorf("thermal_zone: %w", err)
	}
	type zone struct {
		n       int
		id, typ string
		celsius float64
	}
	var zones []zone
	for _, e := range entries {
		id, ok := strings.CutPrefix(e.Name(), "thermal_zone")
		n, err := strconv.Atoi(id)
		if !ok || err != nil {
			continue
		}
		dir := filepath.Join(c.dir, e.Name())
		typ, err := os.ReadFile(filepath.Join(dir, "type"))
		if err != nil {
			return fmt.Errorf("thermal_zone: %w", err)
		}
		raw, err := os.ReadFile(filepath.Join(dir, "temp"))
		// A sensor that is not ready (ENODATA, EAGAIN) is left out this time.
		if errors.Is(err, syscall.ENODATA) || errors.Is(err, syscall.EAGAIN) {
			continue
		}
		if err != nil {
			return fmt.Errorf("thermal_zone: %w", err)
		}
		milli, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
		if err != nil {
			return fmt.Errorf("thermal_zone: %s: %w", filepath.Join(dir, "temp"), err)
		}
		zones = append(zones, zone{n: n, id: id, typ: strings.TrimSpace(string(typ)), celsius: float64(milli) / 1000})
	}
	sort.Slice(zones, func(i, j int) bool { return zones[i].n < zones[j].n })
	for _, z := range zones {
		out.Add(thermalZoneTempDesc, z.celsius, z.id, z.typ)
	}
	return nil
}
