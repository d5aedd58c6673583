package units

import (
	"strings"
	"testing"
)

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"64MiB", 64 << 20, false},
		{"512KiB", 512 << 10, false},
		{"1GiB", 1 << 30, false},
		{"1TiB", 1 << 40, false},
		{"1048576", 1 << 20, false},
		{"4096B", 4096, false},
		{"0", 0, false},
		// Prometheus' units: KB, MB, GB are powers of 1024 too.
		{"512MB", 512 << 20, false},
		{"10KB", 10 << 10, false},
		{"1GB", 1 << 30, false},
		{"12XB", 0, true},
		{"1kb", 0, true},
		{"1.5GiB", 0, true},
		{"-1", 0, true},
		{"-1MiB", 0, true},
		{"", 0, true},
		{"MiB", 0, true},
		{"12 apples", 0, true},
		{"99999999999999999999", 0, true},
		{"9223372036854775807", 0, true},
		{"8589934592GiB", 0, true}, // 2^63 bytes
		{"4294967296GiB", 1 << 62, false},
		{"4294967297GiB", 0, true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseBytes(tc.in)
			switch {
			case tc.wantErr && err == nil:
				t.Errorf("ParseBytes(%q) = %d, want an error", tc.in, got)
			case !tc.wantErr && err != nil:
				t.Errorf("ParseBytes(%q): %v", tc.in, err)
			case !tc.wantErr && got != tc.want:
				t.Errorf("ParseBytes(%q) = %d, want %d", tc.in, got, tc.want)
			}
			if err != nil && !strings.Contains(err.Error(), tc.in) {
				t.Errorf("error %q does not quote the input", err)
			}
		})
	}
}

func TestFormatBytesReadsBack(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want string
	}{{0, "0"}, {1000, "1000"}, {1024, "1KiB"}, {64 << 20, "64MiB"}, {3 << 30, "3GiB"}, {1536 << 10, "1536KiB"}, {1<<20 + 1, "1048577"}} {
		got := FormatBytes(c.n)
		back, err := ParseBytes(got)
		if got != c.want || err != nil || back != c.n {
			t.Errorf("FormatBytes(%d) = %q (read back %d, %v); want %q", c.n, got, back, err, c.want)
		}
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[float64]string{0: "0 B", 512: "512 B", 1536: "1.5 KiB", 12373196: "11.8 MiB"} {
		if got := HumanBytes(n); got != want {
			t.Errorf("HumanBytes(%v) = %q, want %q", n, got, want)
		}
	}
}
