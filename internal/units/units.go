// Package units reads and writes byte sizes the way Prometheus' own
// configuration does: powers of 1024, whether spelled KiB or KB.
package units

import (
	"fmt"
	"strconv"
	"strings"
)

var suffixes = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	// Prometheus' units (storage.tsdb.retention.size, body_size_limit):
	// KB, MB, GB and TB are powers of 1024 there, and so here.
	{"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"TB", 1 << 40},
	{"B", 1},
}

// ParseBytes reads a whole number of bytes with an optional suffix: B, KiB,
// MiB, GiB, TiB, or Prometheus' KB, MB, GB, TB, which mean the same
// powers of 1024. The error says what was expected.
func ParseBytes(v string) (int64, error) {
	num, mult := v, int64(1)
	for _, u := range suffixes {
		if strings.HasSuffix(v, u.suffix) {
			num, mult = strings.TrimSuffix(v, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size: want bytes, or a whole number with KiB, MiB, GiB (or Prometheus' KB, MB, GB, also powers of 1024)", v)
	}
	return n * mult, nil
}

// FormatBytes writes n exactly, in the largest binary unit that divides it:
// 67108864 is "64MiB", 1000 is "1000". ParseBytes reads it back.
func FormatBytes(n int64) string {
	for i := 3; i >= 0; i-- { // TiB down to KiB
		if u := suffixes[i]; n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// HumanBytes writes n for a person, binary-prefixed with one decimal:
// "11.8 MiB", "512 B".
func HumanBytes(n float64) string {
	const prefixes = "KMGT"
	if n < 1024 {
		return strconv.FormatFloat(n, 'f', -1, 64) + " B"
	}
	i := -1
	for n >= 1024 && i < len(prefixes)-1 {
		n /= 1024
		i++
	}
	return strconv.FormatFloat(n, 'f', 1, 64) + " " + prefixes[i:i+1] + "iB"
}
