// Package bench measures ferry: Go benchmarks of its parts on realistic
// workloads here, and (to come) the side-by-side comparison with the agents
// people use instead. Results go to RESULTS.md.
package bench

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/prometheus/prometheus/model/labels"
)

// Workload generates the samples of a device: node_exporter's families and
// many application series with a few labels, each with values that move the
// way such metrics move.
type Workload struct {
	Series []labels.Labels
	kinds  []valueKind
	values []float64
	rng    *rand.Rand
}

type valueKind int

const (
	cpuCounter   valueKind = iota // seconds, float, grows by up to an interval
	byteGauge                     // memory, moves in 4 KiB pages
	loadGauge                     // two decimals
	countCounter                  // packets, bytes, requests: integers
	floatGauge                    // latencies, ratios: full float precision
	decimalGauge                  // temperatures, voltages: two decimals
	constant                      // info metrics, limits, configuration
)

// NewWorkload returns node_exporter-like host series (4 CPUs, meminfo,
// load, disks and network) plus appSeries application series: half integer
// counters, an eighth gauges of full float precision that change at every
// scrape, an eighth gauges with two decimals, a quarter constants.
func NewWorkload(appSeries int, seed uint64) *Workload {
	w := &Workload{rng: rand.New(rand.NewPCG(seed, seed+1))}
	add := func(k valueKind, lset labels.Labels) {
		w.Series = append(w.Series, lset)
		w.kinds = append(w.kinds, k)
		w.values = append(w.values, w.initial(k))
	}
	host := func(pairs ...string) labels.Labels {
		return labels.FromStrings(append(pairs, "job", "node", "instance", "gw-0042", "site", "plant-7")...)
	}
	for cpu := range 4 {
		for _, mode := range []string{"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"} {
			add(cpuCounter, host("__name__", "node_cpu_seconds_total", "cpu", fmt.Sprint(cpu), "mode", mode))
		}
	}
	for i := range 50 {
		add(byteGauge, host("__name__", fmt.Sprintf("node_memory_Field%d_bytes", i)))
	}
	for _, n := range []string{"node_load1", "node_load5", "node_load15"} {
		add(loadGauge, host("__name__", n))
	}
	for _, dev := range []string{"mmcblk0", "mmcblk0p1", "mmcblk0p2", "sda"} {
		for _, m := range []string{"reads_completed", "writes_completed", "read_bytes", "written_bytes", "io_time_seconds"} {
			add(countCounter, host("__name__", "node_disk_"+m+"_total", "device", dev))
		}
	}
	for _, dev := range []string{"eth0", "eth1", "wlan0", "wwan0", "lo", "br-lan"} {
		for _, m := range []string{"receive_bytes", "transmit_bytes", "receive_packets", "transmit_packets", "receive_errs", "transmit_errs"} {
			add(countCounter, host("__name__", "node_network_"+m+"_total", "device", dev))
		}
	}
	for i := range appSeries {
		lset := labels.FromStrings(
			"__name__", fmt.Sprintf("app_metric_%d", i%100),
			"handler", fmt.Sprintf("/api/v1/thing%d", (i/100)%20),
			"code", []string{"200", "404", "500", "503"}[(i/2000)%4],
			"shard", fmt.Sprint(i/8000),
			"job", "app", "instance", "127.0.0.1:8080", "site", "plant-7")
		switch i % 8 {
		case 0, 1, 2, 3:
			add(countCounter, lset)
		case 4:
			add(floatGauge, lset)
		case 5:
			add(decimalGauge, lset)
		default:
			add(constant, lset)
		}
	}
	return w
}

func (w *Workload) initial(k valueKind) float64 {
	switch k {
	case cpuCounter:
		return math.Round(w.rng.Float64()*1e6) / 100
	case byteGauge:
		return float64(w.rng.IntN(1<<18)) * 4096
	case loadGauge:
		return math.Round(w.rng.Float64()*400) / 100
	case countCounter:
		return float64(w.rng.IntN(1 << 30))
	case floatGauge:
		return w.rng.Float64() * 100
	case decimalGauge:
		return math.Round(w.rng.Float64()*8000) / 100
	default:
		return float64(w.rng.IntN(1000))
	}
}

// Next advances every series by one scrape interval and calls emit with
// each series' new value.
func (w *Workload) Next(emit func(i int, lset labels.Labels, v float64)) {
	for i, k := range w.kinds {
		v := w.values[i]
		switch k {
		case cpuCounter:
			v += math.Round(w.rng.Float64()*1500) / 100
		case byteGauge:
			v += float64(w.rng.IntN(65)-32) * 4096
		case loadGauge:
			v = math.Max(0, math.Round((v+w.rng.NormFloat64()*0.1)*100)/100)
		case countCounter:
			v += float64(w.rng.IntN(21))
		case floatGauge:
			v = w.rng.Float64() * 100
		case decimalGauge:
			v = math.Round((v+w.rng.NormFloat64()*0.5)*100) / 100
		}
		w.values[i] = v
		emit(i, w.Series[i], v)
	}
}
