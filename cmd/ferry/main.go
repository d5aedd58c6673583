// Command ferry is a Prometheus-compatible metrics agent for small devices
// that are often offline: it collects host metrics and scrapes local
// exporters into a size-bounded on-disk buffer, and ships the backlog with
// Prometheus remote write when the link is up.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/ferry-agent/ferry/agent"
	"github.com/ferry-agent/ferry/agent/config"
	"github.com/ferry-agent/ferry/agent/filesd"
	"github.com/ferry-agent/ferry/collectors"
	"github.com/ferry-agent/ferry/collectors/host"
	"github.com/ferry-agent/ferry/internal/httpclient"
	"github.com/ferry-agent/ferry/internal/memtrim"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = ""
)

const usageHeader = `ferry: a metrics agent for small, often offline devices.

Usage:
  ferry [flags]                 collect, buffer on disk, send with remote write
  ferry buffer stat [flags]     what the buffer holds (--storage.path)
  ferry buffer export [flags]   the backlog as OpenMetrics text, or as a carry file
  ferry push FILE [flags]       send a carry file with remote write
  ferry check-config FILE       check a configuration file
  ferry collect [flags]         print one collection of the host collectors
  ferry version                 version, commit and Go version (also ferry --version)

Flags:
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run returns the process exit code: 0 done, 1 failed, 2 bad usage.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "version", "--version":
			fmt.Fprintf(stdout, "ferry %s (commit %s, %s %s/%s)\n", version, buildCommit(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return 0
		case "buffer":
			return runBuffer(args[1:], stdout, stderr)
		case "push":
			return runPush(args[1:], stdout, stderr)
		case "check-config":
			return checkConfig(args[1:], stdout, stderr)
		case "collect":
			return collect(args[1:], stdout, stderr)
		}
	}

	cfg, code, done := agentConfig("ferry", args, stdout, stderr)
	if done {
		return code
	}
	setRuntimeDefaults(os.Getenv)
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	logWarnings(log, cfg)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go memtrim.Run(ctx, trimSchedule(cfg.ScrapeInterval, os.Getenv), log)
	if err := agent.Run(ctx, cfg, log, reloadOnHangup(ctx, args, log)); err != nil {
		log.Error("ferry failed", "err", err)
		return 1
	}
	return 0
}

// defaultGCPercent is the garbage collector's target for the agent when
// GOGC is not set: the heap may grow by 15 % of its live size between
// collections instead of Go's default of all of it. A collection, its
// requests included, makes little garbage (their memory is kept from one to
// the next), so the collector runs seldom even so, and ferry's RSS follows
// its live heap. At 10k series every 5 s: 25 against 50 took 2-3.5 MiB off
// the RSS (about 30 MiB then); 15 against 25 took 0.4 MiB (RssAnon 11.3
// against 11.7 MiB, seven and four alternating runs of 90 s) for no CPU
// the machine could tell apart. 10 took only 0.1 MiB more, and cost 5-19 %
// more CPU in earlier runs. GOGC, when set, wins.
const defaultGCPercent = 15

// defaultMaxProcs is how many threads run ferry's Go code at once when
// GOMAXPROCS is not set (Go's default is one per core). The agent's work is
// a few goroutines that mostly wait (each source's collections, each
// sender's requests), far from a core's worth, and each further processor
// keeps memory of its own (span and stack caches, the collector's work
// buffers). At 10k series every 5 s, 1 against 2 took 0.4-0.6 MiB off the
// RSS (about 21 MiB) for no CPU the machine could tell apart (two
// alternating runs of each, 90 s apiece); and the device's other cores
// stay with its own work. GOMAXPROCS, when set, wins.
const defaultMaxProcs = 1

// setRuntimeDefaults sets the agent's garbage collector target and
// GOMAXPROCS, each unless the environment (getenv) sets it. It changes
// process-wide settings, so it is called from main's agent path only.
func setRuntimeDefaults(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	if getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(defaultMaxProcs)
	}
}

// releaseCodeAfter is how long after the start the agent gives back the
// pages of its code that only the start ran (memtrim.ReleaseCode): its
// first collections and requests are done by then.
const releaseCodeAfter = time.Minute

// returnFreeAbout is about how often the agent gives the heap's free pages
// back (memtrim.Schedule.ReturnFreeEvery). Each time costs a garbage
// collection, and the pages the next collections need are faulted in again:
// every interval, at 10k series every 5 s, that was 41 % more CPU for 0.9
// MiB less RSS; once a minute, 0.72 s of CPU in three minutes against 0.64
// without, for 0.6 MiB. At 1k series every 15 s, RSS 9.7 MiB against 10.6
// without (every 15 s: 9.3), for no CPU the harness could tell apart.
const returnFreeAbout = time.Minute

// trimSchedule is when the agent gives memory back (memtrim): the start's
// code once, releaseCodeAfter after the start; and, unless GOGC is set (the
// garbage collector is then the user's to tune), the heap's free pages
// every returnFreeAbout rounded up to whole collection intervals (interval,
// the global one at the start), half an interval after a collection: the
// sources collect at the start, then every interval.
func trimSchedule(interval time.Duration, getenv func(string) string) memtrim.Schedule {
	s := memtrim.Schedule{ReleaseCodeAfter: releaseCodeAfter}
	if getenv("GOGC") == "" && interval > 0 {
		s.ReturnFreeEvery = (returnFreeAbout + interval - 1) / interval * interval
		s.ReturnFreeFirst = s.ReturnFreeEvery - interval/2
	}
	return s
}

// agentConfig builds the agent's configuration from its flags and, if one
// is named, its config file. done means: exit with code (help, bad usage).
func agentConfig(name string, args []string, stdout, stderr io.Writer) (cfg config.Config, code int, done bool) {
	cfg = config.DefaultConfig()
	cfg.Version = version
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	flags := config.NewFlags(fs, &cfg, host.Collectors())
	if code, done := parseFlags(fs, args, usageHeader, 0, stdout, stderr); done {
		return cfg, code, true
	}
	if err := flags.Finish(); err != nil {
		fmt.Fprintf(stderr, "ferry: %v\n", err)
		return cfg, 2, true
	}
	return cfg, 0, false
}

// reloadOnHangup reads the flags and the config file again at each SIGHUP
// and passes on the configuration; one that does not parse is refused here,
// with a log line, and the running one stays.
func reloadOnHangup(ctx context.Context, args []string, log *slog.Logger) <-chan config.Config {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	reloads := make(chan config.Config)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			}
			log.Info("SIGHUP: reloading the configuration")
			var errs strings.Builder
			cfg, _, done := agentConfig("ferry", args, io.Discard, &errs)
			if done {
				log.Error("reload refused; the running configuration stays", "err", strings.TrimSpace(strings.TrimPrefix(errs.String(), "ferry: ")))
				continue
			}
			logWarnings(log, cfg)
			select {
			case reloads <- cfg:
			case <-ctx.Done():
				return
			}
		}
	}()
	return reloads
}

// logWarnings logs what the config file has that ferry ignores, one line
// each.
func logWarnings(log *slog.Logger, cfg config.Config) {
	for _, w := range cfg.Warnings {
		log.Warn("config file: " + w)
	}
}

func buildCommit() string {
	if commit != "" {
		return commit
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

// checkConfig validates a configuration file and says what it sets up.
func checkConfig(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "ferry: usage: ferry check-config FILE")
		return 2
	}
	cfg, err := config.CheckFile(args[0], host.Collectors()...)
	if err != nil {
		fmt.Fprintf(stderr, "ferry: %v\n", err)
		return 1
	}
	rw := httpclient.RedactURL(cfg.RemoteWrite.URL)
	if rw == "" {
		rw = "none (buffer only)"
	}
	fmt.Fprintf(stdout, "%s: OK\n  scrape interval: %s\n  scrape targets:  %d\n", args[0], cfg.ScrapeInterval, len(cfg.Targets))
	for _, sd := range cfg.FileSD {
		groups, readErrs := readFileSD(sd)
		ts, errs := sd.Targets(groups)
		fmt.Fprintf(stdout, "  file_sd:         job %s, %d targets now from %s (re-read on change, at least every %s)\n",
			sd.Job, len(ts), strings.Join(sd.Files, ", "), sd.RefreshInterval)
		for _, err := range append(readErrs, errs...) {
			fmt.Fprintf(stdout, "    left out: %v\n", err)
		}
	}
	if eps := cfg.Endpoints(); len(eps) > 1 {
		fmt.Fprintf(stdout, "  external labels: %s\n  remote write:    %d endpoints, from one buffer\n", cfg.ExternalLabels, len(eps))
		for _, ep := range eps {
			fmt.Fprintf(stdout, "    endpoint %s: %s", ep.Label(), httpclient.RedactURL(ep.URL))
			if len(ep.WriteRelabel) > 0 {
				fmt.Fprintf(stdout, " (write relabel: %d rules, applied as it is sent)", len(ep.WriteRelabel))
			}
			fmt.Fprintln(stdout)
		}
	} else {
		fmt.Fprintf(stdout, "  external labels: %s\n  remote write:    %s\n", cfg.ExternalLabels, rw)
	}
	if len(cfg.WriteRelabel) > 0 && len(cfg.MoreRemoteWrite) == 0 {
		fmt.Fprintf(stdout, "  write relabel:   %d rules, applied as samples are collected\n", len(cfg.WriteRelabel))
	}
	if len(cfg.Warnings) > 0 {
		fmt.Fprintf(stdout, "  ignored:\n")
		for _, w := range cfg.Warnings {
			fmt.Fprintf(stdout, "    %s\n", strings.TrimPrefix(w, args[0]+": "))
		}
	}
	return 0
}

// readFileSD reads the files a file_sd job names now, for check-config;
// a file that does not read is an error and left out, as the agent does.
func readFileSD(sd config.FileSD) (groups []config.TargetGroup, errs []error) {
	for _, pattern := range sd.Files {
		paths, _ := filepath.Glob(pattern)
		for _, p := range paths {
			g, err := filesd.ReadFile(p)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			groups = append(groups, g...)
		}
	}
	return groups, errs
}

// collect prints one collection of the enabled host collectors in the
// Prometheus text format: what ferry would send from this device.
func collect(args []string, stdout, stderr io.Writer) int {
	cfg, code, done := agentConfig("ferry collect", args, stdout, stderr)
	if done {
		return code
	}
	hc := host.NewSet(cfg.Collectors, cfg.Paths)
	if hc == nil {
		fmt.Fprintln(stderr, "ferry: every host collector is disabled")
		return 2
	}
	var c collectors.Collection
	err := hc.Collect(context.Background(), &c)
	if werr := collectors.WriteText(stdout, &c); werr != nil {
		fmt.Fprintf(stderr, "ferry: %v\n", werr)
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "ferry: %v\n", err)
		return 1
	}
	return 0
}
