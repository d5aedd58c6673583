package host

import (
	"context"
	"path/filepath"

	"github.com/ferry-agent/ferry/collectors"
)

var (
	entropyAvailDesc = collectors.NewDesc("node_entropy_available_bits",
		"Bits of available entropy.", collectors.Gauge)
	entropyPoolDesc = collectors.NewDesc("node_entropy_pool_size_bits",
		"Bits of entropy pool.", collectors.Gauge)
)

// entropyCollector matters on routers with old kernels: before Linux 5.18
// a board without a hardware RNG could starve for entropy at boot (TLS,
// WPA key generation waiting). Since 5.18 both values read 256.
type entropyCollector struct{ avail, pool string }

func newEntropy(p collectors.Paths) collectors.Collector {
	dir := filepath.Join(p.ProcFS, "sys", "kernel", "random")
	return &entropyCollector{avail: filepath.Join(dir, "entropy_avail"), pool: filepath.Join(dir, "poolsize")}
}

func (c *entropyCollector) Collect(_ context.Context, out *collectors.Collection) error {
	avail, err := readUint("entropy", c.avail)
	if err != nil {
		return err
	}
	pool, err := readUint("entropy", c.pool)
	if err != nil {
		return err
	}
	out.Add(entropyAvailDesc, avail)
	out.Add(entropyPoolDesc, pool)
	return nil
}
