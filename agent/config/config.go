// Package config is what ferry runs with: the command-line flags, the YAML
// file (a subset of prometheus.yml), scrape targets, and labels read on the
// device. It only reads and validates; the agent runs what it returns.
package config

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"

	"github.com/ferry-agent/ferry/agent/remotewrite"
	"github.com/ferry-agent/ferry/buffer"
	"github.com/ferry-agent/ferry/collectors"
)

// Config is everything the agent runs with, from flags and the config file.
// It is a value: the agent keeps its own copy, and a reload hands over a new
// one rather than changing the running one.
type Config struct {
	RemoteWrite remotewrite.Config // an empty URL means: collect and buffer only

	StoragePath    string
	StorageMaxSize int64
	SyncInterval   time.Duration // how often what waits is synced to disk: the loss window of a power cut
	StorageThin    bool          // when full, thin old data instead of evicting it

	ScrapeInterval time.Duration
	Targets        []ScrapeTarget // static: from flags and static_configs
	FileSD         []FileSD       // jobs whose targets are read from files
	ExternalLabels labels.Labels
	// WriteRelabel is remote_write's write_relabel_configs. With one
	// receiver, the agent applies it as it appends, after the external
	// labels, as Prometheus does before sending: the buffer keeps what
	// the receiver is to get.
	WriteRelabel []*relabel.Config
	Collectors   map[string]bool // host collector name: enabled
	Paths        collectors.Paths

	ClockRequireSync bool // hold samples until the kernel calls the clock synchronised

	ListenAddress string
	LogLevel      slog.Level
	Version       string

	// Warnings are what the config file has that ferry ignores, one line
	// each naming the file, line, section and why; for the log.
	Warnings []string
}

// The schedule of sources unless configured otherwise; a collection's
// timeout is its interval, at most MaxScrapeTimeout, as in Prometheus.
const (
	DefaultScrapeInterval = 15 * time.Second
	MaxScrapeTimeout      = 10 * time.Second
)

// DefaultConfig is what ferry runs with when no flag or file says otherwise.
func DefaultConfig() Config {
	return Config{
		RemoteWrite: remotewrite.Config{
			Timeout:           30 * time.Second,
			MinBackoff:        time.Second,
			MaxBackoff:        2 * time.Second, // back within seconds after an outage: while the receiver fails, each retry carries one sample
			MaxSamplesPerSend: 5000,
			// A fleet cut off together comes back spread over this; one
			// device waits at most as long as its outage lasted.
			ReconnectJitter: 20 * time.Second,
		},
		StoragePath:    "./data",
		StorageMaxSize: 64 << 20,
		SyncInterval:   30 * time.Second,
		ScrapeInterval: DefaultScrapeInterval,
		ExternalLabels: labels.EmptyLabels(),
		Paths:          collectors.Paths{ProcFS: "/proc", SysFS: "/sys", RootFS: "/"},
		ListenAddress:  "127.0.0.1:9391",
		LogLevel:       slog.LevelInfo,
	}
}

// Validate reports the first setting that cannot work, naming its flag. It
// reads the TLS and secret files the remote-write settings name, so that a
// wrong path fails at start, not at the first request.
func (c *Config) Validate() error {
	if c.RemoteWrite.URL != "" {
		if err := checkURL(c.RemoteWrite.URL); err != nil {
			return fmt.Errorf("--remote-write.url: %w", err)
		}
		if err := c.RemoteWrite.HTTP.Validate(); err != nil {
			return fmt.Errorf("remote write: %w", err)
		}
	}
	switch {
	case c.StoragePath == "":
		return fmt.Errorf("--storage.path: must not be empty")
	case c.StorageMaxSize < 1<<20:
		return fmt.Errorf("--storage.max-size: %d bytes is below the minimum of 1MiB", c.StorageMaxSize)
	case strconv.IntSize == 32 && c.StorageMaxSize > buffer.MaxSize32:
		return fmt.Errorf("--storage.max-size: at most %dMiB on a 32-bit system (bbolt maps the file into memory)", buffer.MaxSize32>>20)
	case c.ScrapeInterval < minScrapeInterval:
		return fmt.Errorf("--scrape.interval: %s is below the minimum of %s", c.ScrapeInterval, minScrapeInterval)
	case c.SyncInterval <= 0:
		return fmt.Errorf("--storage.sync-interval: must be positive")
	case c.RemoteWrite.MinBackoff <= 0 || c.RemoteWrite.MaxBackoff < c.RemoteWrite.MinBackoff:
		return fmt.Errorf("--remote-write.min-backoff, --remote-write.max-backoff: want 0 < min <= max")
	case c.RemoteWrite.Timeout <= 0:
		return fmt.Errorf("--remote-write.timeout: must be positive")
	case c.RemoteWrite.MaxSamplesPerSend <= 0:
		return fmt.Errorf("--remote-write.max-samples-per-send: must be positive")
	case c.RemoteWrite.MaxSampleAge < 0:
		return fmt.Errorf("--remote-write.max-sample-age: must not be negative")
	case c.RemoteWrite.ReconnectJitter < 0:
		return fmt.Errorf("--remote-write.reconnect-jitter: must not be negative")
	}
	if err := checkListenAddress(c.ListenAddress); err != nil {
		return fmt.Errorf("--web.listen-address: %w", err)
	}
	return nil
}

// checkListenAddress accepts what net.Listen("tcp", addr) can take: empty
// (off), or host:port with a numeric port; the host may be empty (every
// interface), a name or an address, IPv6 in brackets. Whether the port is
// free is learnt at listen time.
func checkListenAddress(addr string) error {
	if addr == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: want host:port, e.g. 127.0.0.1:9391 or :9391", addr)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", addr, port)
	}
	if strings.ContainsAny(host, " /?#@") {
		return fmt.Errorf("%q: %q is not a host name or address", addr, host)
	}
	return nil
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: scheme must be http or https", s)
	}
	if u.Host == "" {
		return fmt.Errorf("%q: no host", s)
	}
	return nil
}
