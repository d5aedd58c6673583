// Package config is what ferry runs with: the command-line flags, the YAML
// file (a subset of prometheus.yml), scrape targets, and labels read on the
// device. It only reads and validates; the agent runs what it returns.
package config

import (
	"crypto/sha256"
	"encoding/hex"
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
	// RemoteWriteName is the first remote_write entry's name, "" if none.
	RemoteWriteName string
	// MoreRemoteWrite are the remote_write entries after the first (the
	// first is RemoteWrite, with the flags): ferry sends to each from the
	// one buffer. Endpoints lists them all.
	MoreRemoteWrite []RemoteWrite

	StoragePath    string
	StorageMaxSize int64
	SyncInterval   time.Duration // how often what waits is synced to disk: the loss window of a power cut
	StorageThin    bool          // when full, thin old data instead of evicting it

	ScrapeInterval time.Duration
	Targets        []ScrapeTarget // static: from flags and static_configs
	FileSD         []FileSD       // jobs whose targets are read from files
	ExternalLabels labels.Labels
	// WriteRelabel is the first remote_write entry's
	// write_relabel_configs. With one receiver, the agent applies it as it
	// appends, after the external labels, as Prometheus does before
	// sending: the buffer keeps what the receiver is to get. With several,
	// each endpoint's applies as its sender reads the buffer.
	WriteRelabel []*relabel.Config
	Collectors   map[string]bool // host collector name: enabled
	Paths        collectors.Paths

	ClockRequireSync bool // hold samples until the kernel calls the clock synchronised

	// Instance is the instance label of the host's and ferry's own series:
	// --instance, or read from --instance-from; empty: the hostname.
	Instance string

	ListenAddress string
	LogLevel      slog.Level
	Version       string

	// Warnings are what the config file has that ferry ignores, one line
	// each naming the file, line, section and why; for the log.
	Warnings []string
}

// RemoteWrite is one remote_write endpoint.
type RemoteWrite struct {
	Name string // "" if the entry has none
	remotewrite.Config
	WriteRelabel []*relabel.Config
}

// Label is the endpoint's value of the endpoint label in ferry's metrics:
// its name, or, as Prometheus names an unnamed queue, a short hash (here:
// of its URL, so that it stays when other settings change).
func (rw RemoteWrite) Label() string {
	if rw.Name != "" {
		return rw.Name
	}
	sum := sha256.Sum256([]byte(rw.URL))
	return hex.EncodeToString(sum[:3])
}

// Endpoints returns every remote_write endpoint, the first (RemoteWrite)
// first; none without a URL. The slice is new; the settings are shared.
func (c *Config) Endpoints() []RemoteWrite {
	if c.RemoteWrite.URL == "" {
		return nil
	}
	return append([]RemoteWrite{{Name: c.RemoteWriteName, Config: c.RemoteWrite, WriteRelabel: c.WriteRelabel}}, c.MoreRemoteWrite...)
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
			Timeout:    30 * time.Second,
			MinBackoff: time.Second,
			MaxBackoff: 2 * time.Second, // back within seconds after an outage: while the receiver fails, each retry carries one sample
			// Above Prometheus' 2000: ferry sends one request at a time,
			// so a drain goes at this many samples per round trip. At 10k
			// series every 5 s, 2000 drained at 51.5k samples/s against
			// 118.6k with 5000 (bench/RESULTS.md).
			MaxSamplesPerSend: 5000,
			Protocol:          remotewrite.Protocol2, // falls back to 1 for receivers without 2.0
			Metadata:          remotewrite.MetadataConfig{Send: true, SendInterval: remotewrite.DefaultMetadataInterval, MaxSamplesPerSend: remotewrite.DefaultMetadataPerSend},
			// A fleet cut off together comes back spread over this; one
			// device waits at most as long as its outage lasted. Short:
			// one device's drain stays ahead of the peers' (bench/: at
			// 5 s a wait above ~3 s put it behind Prometheus' at the
			// heavy workload), a fleet's burst is spread over seconds
			// instead of one; large fleets set more (bench/RESULTS.md,
			// the fleet).
			ReconnectJitter: 2 * time.Second,
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
	if len(c.MoreRemoteWrite) > 0 {
		if c.RemoteWrite.URL == "" {
			return fmt.Errorf("remote_write: the first entry has no url, the others do")
		}
		for _, ep := range c.Endpoints() {
			switch {
			case ep.FreshFirst:
				return fmt.Errorf("fresh-first (--remote-write.fresh-first, ferry.remote_write.fresh_first) works with one remote_write endpoint only; the config file has %d", len(c.MoreRemoteWrite)+1)
			case ep.MaxBytesPerDay > 0:
				return fmt.Errorf("a daily byte budget (--remote-write.max-bytes-per-day, ferry.remote_write.max_bytes_per_day) works with one remote_write endpoint only; the config file has %d", len(c.MoreRemoteWrite)+1)
			}
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
