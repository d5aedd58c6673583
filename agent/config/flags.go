package config

import (
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/spf13/pflag"

	"github.com/ferry-agent/ferry/collectors"
	"github.com/ferry-agent/ferry/internal/httpclient"
	"github.com/ferry-agent/ferry/internal/units"
)

// Flags binds ferry's command-line flags to a Config. Their names are part
// of ferry's interface: packaging and tools outside this repository use them.
// A Flags is used once, from one goroutine: NewFlags, fs.Parse, Finish.
type Flags struct {
	fs         *pflag.FlagSet
	cfg        *Config
	configFile string
	targets    targetsValue
	external   labelsValue
	labelFile  string
	labelFrom  identityValue
	instance   string
	instFrom   string
	// fromFile names the settings above that came from the config file's
	// ferry section, for errors that name where a value came from.
	fromFile   map[string]bool
	rwHeaders  headersValue
	rwUsername string
	rwPassword string // a file's path
	rwToken    string // a file's path
	collectors []collectors.Entry
	enable     map[string]*bool
	disable    map[string]*bool
}

// NewFlags defines the flags on fs, with cfg's values as defaults, and one
// --collector.NAME / --no-collector.NAME pair for each host collector. The
// flags write into cfg as fs parses them; cfg must outlive Finish.
func NewFlags(fs *pflag.FlagSet, cfg *Config, hostCollectors []collectors.Entry) *Flags {
	f := &Flags{fs: fs, cfg: cfg, collectors: hostCollectors, enable: map[string]*bool{}, disable: map[string]*bool{}}
	rw := &cfg.RemoteWrite
	fs.StringVar(&rw.URL, "remote-write.url", rw.URL, "Prometheus remote-write endpoint, e.g. http://prometheus:9090/api/v1/write. Without it ferry collects and buffers only.")
	fs.DurationVar(&rw.Timeout, "remote-write.timeout", rw.Timeout, "Timeout of one remote-write request.")
	fs.DurationVar(&rw.MinBackoff, "remote-write.min-backoff", rw.MinBackoff, "First wait before retrying a failed request; doubles up to the maximum.")
	fs.DurationVar(&rw.MaxBackoff, "remote-write.max-backoff", rw.MaxBackoff, "Longest wait between retries.")
	fs.IntVar(&rw.MaxSamplesPerSend, "remote-write.max-samples-per-send", rw.MaxSamplesPerSend, "Samples per request, at least one buffer block.")
	fs.DurationVar(&rw.MaxSampleAge, "remote-write.max-sample-age", rw.MaxSampleAge, "Drop, counted, samples older than this when their turn to be sent comes, for receivers that refuse old data; 0 sends everything.")
	fs.Var((*sizeValue)(&rw.MaxBytesPerSecond), "remote-write.max-bytes-per-second", "Average upload rate for metered links: bytes, or with KiB, MiB; 0 for no limit.")
	fs.Var((*sizeValue)(&rw.BacklogBytesPerSecond), "remote-write.backlog-bytes-per-second", "Average upload rate of the backlog after an outage (KiB, MiB), so that a fleet back at once drains at a pace its receiver takes; fresh data is not held to it; 0 for no limit.")
	fs.DurationVar(&rw.ReconnectJitter, "remote-write.reconnect-jitter", rw.ReconnectJitter, "When the receiver answers again after an outage, wait a random time below this (and below the outage's length) before sending the backlog, so that a fleet cut off together does not send all at once; 0 sends at once.")
	fs.BoolVar(&rw.FreshFirst, "remote-write.fresh-first", rw.FreshFirst, "After an outage, send new data first and drain the backlog behind it (for receivers that accept out-of-order samples); off: oldest first.")
	fs.Var((*sizeValue)(&rw.MaxBytesPerDay), "remote-write.max-bytes-per-day", "Request bytes per UTC day for metered links (KiB, MiB, GiB); the backlog within three quarters of it, the rest kept for fresh data, which goes ahead of the backlog once the budget holds the backlog back (logged); 0 for no limit.")
	fs.Var(&rw.Protocol, "remote-write.protocol", "Remote-Write version: 1, or 2 (io.prometheus.write.v2.Request, fewer bytes; falls back to 1 when the receiver refuses it).")
	fs.BoolVar(&rw.Metadata.Send, "remote-write.metadata.send", rw.Metadata.Send, "Send each metric family's type, help and unit: with 2.0 in the requests, each series' once per interval; with 1.0 in metadata requests of their own every interval. Start times go with 2.0's samples either way.")
	fs.DurationVar(&rw.Metadata.SendInterval, "remote-write.metadata.send-interval", rw.Metadata.SendInterval, "How often metadata is sent again (metadata_config's send_interval).")
	// Secrets only from files: a value on the command line shows in ps.
	fs.StringVar(&f.rwUsername, "remote-write.basic-auth.username", "", "Basic auth user name for the receiver.")
	fs.StringVar(&f.rwPassword, "remote-write.basic-auth.password-file", "", "File holding the basic auth password, read at each request.")
	fs.StringVar(&f.rwToken, "remote-write.bearer-token-file", "", "File holding a bearer token for the receiver, read at each request.")
	fs.Var(&f.rwHeaders, "remote-write.header", "HTTP header NAME=VALUE sent with every request, e.g. X-Scope-OrgID=fleet; repeatable.")
	fs.StringVar(&rw.HTTP.TLS.CAFile, "remote-write.tls.ca-file", "", "CA certificate(s) (PEM) to verify the receiver with, instead of the system's.")
	fs.StringVar(&rw.HTTP.TLS.CertFile, "remote-write.tls.cert-file", "", "Client certificate (PEM) for mutual TLS.")
	fs.StringVar(&rw.HTTP.TLS.KeyFile, "remote-write.tls.key-file", "", "Key (PEM) of the client certificate.")
	fs.StringVar(&rw.HTTP.TLS.ServerName, "remote-write.tls.server-name", "", "Name the receiver's certificate must carry, if not the URL's host.")
	fs.BoolVar(&rw.HTTP.TLS.InsecureSkipVerify, "remote-write.tls.insecure-skip-verify", false, "Do not verify the receiver's certificate (testing only: anyone on the path can read and change the data).")
	fs.StringVar(&rw.HTTP.ProxyURL, "remote-write.proxy-url", "", "HTTP proxy for the receiver; by default HTTP_PROXY, HTTPS_PROXY and NO_PROXY from the environment.")
	fs.StringVar(&cfg.StoragePath, "storage.path", cfg.StoragePath, "Directory of the on-disk buffer.")
	fs.Var((*sizeValue)(&cfg.StorageMaxSize), "storage.max-size", "Cap of the buffer's file: bytes, or with KiB, MiB, GiB. When full, the oldest data goes first.")
	fs.DurationVar(&cfg.SyncInterval, "storage.sync-interval", cfg.SyncInterval, "How often samples waiting for the receiver are synced (fsync) to flash: a power cut loses at most this much, a crash of ferry a second or two. Samples the receiver took from memory are never written.")
	fs.BoolVar(&cfg.StorageThin, "storage.thin", cfg.StorageThin, "When the buffer is full, thin old data (keep every other sample, more often the older) instead of evicting the oldest whole: a long outage leaves a coarse history instead of a gap.")
	fs.DurationVar(&cfg.ScrapeInterval, "scrape.interval", cfg.ScrapeInterval, "Interval of the host collectors and scrape targets.")
	fs.Var(&f.targets, "scrape.target", "Exporter to scrape, as [JOB=]URL; repeatable. JOB defaults to \"scrape\".")
	fs.Var(&f.external, "external-label", "Label NAME=VALUE added to every sample unless it has that label; repeatable.")
	fs.Var(&f.labelFrom, "external-label-from", "External label NAME=SOURCE read on the device, SOURCE one of "+identitySources+": one image, a label per device; repeatable.")
	fs.StringVar(&f.labelFile, "external-label-file", "", "File of external labels, NAME=VALUE per line (# comments).")
	fs.StringVar(&f.instance, "instance", "", "The instance label of the host's series (job node) and ferry's own (job ferry), which tell devices apart; default: the hostname.")
	fs.StringVar(&f.instFrom, "instance-from", "", "Read the instance label on the device, from one of "+identitySources+", for an image run on many devices; --instance wins.")
	fs.BoolVar(&cfg.ClockRequireSync, "clock.require-sync", cfg.ClockRequireSync, "Hold samples (in memory, bounded) until the kernel reports the clock synchronised by NTP, not only later than ferry's build: for boards that boot with a saved, stale time. Off: containers often report an unsynchronised clock that is right.")
	fs.StringVar(&cfg.ListenAddress, "web.listen-address", cfg.ListenAddress, "Address of ferry's own /metrics, /-/healthy and /-/ready; empty to turn them off.")
	fs.StringVar(&f.configFile, "config.file", "", "Optional YAML configuration file (a subset of prometheus.yml). Flags given on the command line win.")
	fs.Var((*levelValue)(&cfg.LogLevel), "log.level", "Log level: debug, info, warn or error.")
	fs.StringVar(&cfg.Paths.ProcFS, "path.procfs", cfg.Paths.ProcFS, "procfs mount point.")
	fs.StringVar(&cfg.Paths.SysFS, "path.sysfs", cfg.Paths.SysFS, "sysfs mount point.")
	fs.StringVar(&cfg.Paths.RootFS, "path.rootfs", cfg.Paths.RootFS, "rootfs mount point.")
	for _, e := range hostCollectors {
		f.enable[e.Name] = fs.Bool("collector."+e.Name, e.DefaultEnabled, "Enable the "+e.Name+" collector: "+e.Help+".")
		f.disable[e.Name] = fs.Bool("no-collector."+e.Name, false, "Disable the "+e.Name+" collector.")
	}
	return f
}

// Finish applies the config file, if any, under the flags that were given,
// reads the label files and device identities, and validates the result.
// Call it after fs.Parse. Its error names the flag or file at fault; cfg is
// then partly filled in and must not be run.
func (f *Flags) Finish() error {
	var file fileIdentity
	if f.configFile != "" {
		var err error
		if file, err = applyFile(f.configFile, f.cfg, f.fs.Changed); err != nil {
			return fmt.Errorf("--config.file: %w", err)
		}
	}
	if err := f.resolveFile(file); err != nil {
		return fmt.Errorf("--config.file: %s: %w", f.configFile, err)
	}
	f.cfg.Targets = append(f.cfg.Targets, f.targets...)
	rw := &f.cfg.RemoteWrite.HTTP
	// Each auth flag given replaces its own field of the file's basic_auth,
	// not the others.
	if f.rwUsername != "" || f.rwPassword != "" {
		var ba httpclient.BasicAuth
		if rw.BasicAuth != nil {
			ba = *rw.BasicAuth
		}
		if f.rwUsername != "" {
			ba.Username = f.rwUsername
		}
		if f.rwPassword != "" {
			ba.Password, ba.PasswordFile = "", f.rwPassword
		}
		rw.BasicAuth = &ba
	}
	if f.rwToken != "" {
		rw.BearerTokenFile = f.rwToken
	}
	for name, value := range f.rwHeaders {
		if rw.Headers == nil {
			rw.Headers = map[string]string{}
		}
		rw.Headers[name] = value
	}
	// The config file's labels, then the label file's, then those read on
	// the device, then --external-label: the more specific wins.
	if f.labelFile != "" {
		fromFile, err := readLabelFile(f.labelFile)
		if err != nil {
			return fmt.Errorf("%s: %w", f.origin("external-label-file", "external_label_file"), err)
		}
		f.cfg.ExternalLabels = mergeLabels(f.cfg.ExternalLabels, fromFile)
	}
	for _, name := range slices.Sorted(maps.Keys(f.labelFrom)) {
		value, err := readIdentity(f.labelFrom[name], f.cfg.Paths)
		if err != nil {
			return fmt.Errorf("%s %s=%s: %w", f.origin("external-label-from "+name, "external_labels_from"), name, f.labelFrom[name], err)
		}
		f.cfg.ExternalLabels = mergeLabels(f.cfg.ExternalLabels, map[string]string{name: value})
	}
	f.cfg.ExternalLabels = mergeLabels(f.cfg.ExternalLabels, f.external)
	// The instance: given, else read from its source, else (empty) the
	// agent's hostname.
	f.cfg.Instance = f.instance
	if f.cfg.Instance == "" && f.instFrom != "" {
		v, err := readIdentity(f.instFrom, f.cfg.Paths)
		if err != nil {
			return fmt.Errorf("%s %s: %w", f.origin("instance-from", "instance_from"), f.instFrom, err)
		}
		f.cfg.Instance = v
	}
	if f.cfg.Instance != "" {
		if err := checkLabel(model.InstanceLabel, f.cfg.Instance); err != nil {
			return fmt.Errorf("%s: %w", f.origin("instance", "instance"), err)
		}
	}
	f.cfg.Collectors = map[string]bool{}
	for _, e := range f.collectors {
		on := e.DefaultEnabled
		if v, ok := file.collectors[e.Name]; ok {
			on = v
		}
		// A flag given wins over the file; both given: --no-collector wins.
		if f.fs.Changed("collector."+e.Name) || f.fs.Changed("no-collector."+e.Name) {
			on = *f.enable[e.Name] && !*f.disable[e.Name]
		}
		f.cfg.Collectors[e.Name] = on
	}
	return f.cfg.Validate()
}

// resolveFile applies the file's identity settings and collectors under
// the flags that were given: a file's instance or source is used when
// neither --instance nor --instance-from is given; its label file when
// --external-label-file is not; its labels from the device under those of
// --external-label-from.
func (f *Flags) resolveFile(file fileIdentity) error {
	if err := checkCollectorNames(file.collectors, f.collectors); err != nil {
		return fmt.Errorf("ferry.collectors: %w", err)
	}
	f.fromFile = map[string]bool{}
	if !f.fs.Changed("instance") && !f.fs.Changed("instance-from") {
		f.instance, f.instFrom = file.instance, file.instanceFrom
		f.fromFile["instance"], f.fromFile["instance-from"] = true, true
	}
	if !f.fs.Changed("external-label-file") && file.labelFile != "" {
		f.labelFile = file.labelFile
		f.fromFile["external-label-file"] = true
	}
	for name, source := range file.labelsFrom {
		if _, ok := f.labelFrom[name]; !ok {
			if f.labelFrom == nil {
				f.labelFrom = identityValue{}
			}
			f.labelFrom[name] = source
			f.fromFile["external-label-from "+name] = true
		}
	}
	return nil
}

// origin names where a setting came from in an error: its flag, or the
// config file's field, so that an error never names a flag not given.
func (f *Flags) origin(flag, field string) string {
	if f.fromFile[flag] {
		return "--config.file: " + f.configFile + ": ferry." + field
	}
	name, _, _ := strings.Cut(flag, " ")
	return "--" + name
}

// checkCollectorNames refuses a name in the file that is no host
// collector's.
func checkCollectorNames(names map[string]bool, known []collectors.Entry) error {
	for _, name := range slices.Sorted(maps.Keys(names)) {
		if !slices.ContainsFunc(known, func(e collectors.Entry) bool { return e.Name == name }) {
			var all []string
			for _, e := range known {
				all = append(all, e.Name)
			}
			return fmt.Errorf("%q is not a host collector; they are: %s", name, strings.Join(all, ", "))
		}
	}
	return nil
}

// mergeLabels returns base with over's labels set on top.
func mergeLabels(base labels.Labels, over map[string]string) labels.Labels {
	b := labels.NewBuilder(base)
	for k, v := range over {
		b.Set(k, v)
	}
	return b.Labels()
}

// sizeValue parses byte sizes such as 64MiB, 512KiB, 2GiB, 512MB or 1048576.
type sizeValue int64

func (s *sizeValue) String() string { return units.FormatBytes(int64(*s)) }
func (s *sizeValue) Type() string   { return "size" }
func (s *sizeValue) Set(v string) error {
	n, err := units.ParseBytes(v)
	if err != nil {
		return err
	}
	*s = sizeValue(n)
	return nil
}

// levelValue is a slog level flag.
type levelValue slog.Level

func (l *levelValue) String() string { return strings.ToLower(slog.Level(*l).String()) }
func (l *levelValue) Type() string   { return "level" }
func (l *levelValue) Set(v string) error {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(v)); err != nil {
		return fmt.Errorf("%q is not a level: want debug, info, warn or error", v)
	}
	*l = levelValue(lvl)
	return nil
}

// targetsValue collects --scrape.target [JOB=]URL.
type targetsValue []ScrapeTarget

func (t *targetsValue) String() string { return "" }
func (t *targetsValue) Type() string   { return "[JOB=]URL" }
func (t *targetsValue) Set(v string) error {
	job, raw := "scrape", v
	// A JOB= prefix has none of a URL's separators before its "=".
	if i := strings.Index(v, "="); i > 0 && !strings.ContainsAny(v[:i], "/:?") {
		job, raw = v[:i], v[i+1:]
	}
	target, err := parseTarget(job, raw)
	if err != nil {
		return err
	}
	*t = append(*t, target)
	return nil
}

func parseTarget(job, raw string) (ScrapeTarget, error) {
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	if err := checkURL(raw); err != nil {
		return ScrapeTarget{}, err
	}
	u, _ := url.Parse(raw)
	if u.Path == "" {
		u.Path = "/metrics"
	}
	return newScrapeTarget(job, u), nil
}

// labelsValue collects --external-label NAME=VALUE.
type labelsValue map[string]string

func (l *labelsValue) String() string { return "" }
func (l *labelsValue) Type() string   { return "NAME=VALUE" }
func (l *labelsValue) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("%q: want NAME=VALUE", v)
	}
	if err := checkLabel(name, value); err != nil {
		return err
	}
	if *l == nil {
		*l = map[string]string{}
	}
	(*l)[name] = value
	return nil
}

func checkLabel(name, value string) error {
	if !model.LabelName(name).IsValidLegacy() || strings.HasPrefix(name, "__") {
		return fmt.Errorf("%q is not a valid label name", name)
	}
	if value == "" {
		return fmt.Errorf("label %s: empty value", name)
	}
	return nil
}

// headersValue collects --remote-write.header NAME=VALUE.
type headersValue map[string]string

func (h *headersValue) String() string { return "" }
func (h *headersValue) Type() string   { return "NAME=VALUE" }
func (h *headersValue) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok || name == "" || strings.ContainsFunc(name, func(r rune) bool {
		return r <= ' ' || r >= 0x7f || strings.ContainsRune("\"(),/:;<=>?@[\\]{}", r)
	}) {
		return fmt.Errorf("%q: want NAME=VALUE with a valid header name", v)
	}
	if strings.ContainsAny(value, "\r\n") {
		return fmt.Errorf("%q: a header value cannot hold a line break", v)
	}
	if *h == nil {
		*h = map[string]string{}
	}
	(*h)[name] = value
	return nil
}

// identityValue collects --external-label-from NAME=SOURCE.
type identityValue map[string]string

func (v *identityValue) String() string { return "" }
func (v *identityValue) Type() string   { return "NAME=SOURCE" }
func (v *identityValue) Set(s string) error {
	name, source, ok := strings.Cut(s, "=")
	if !ok || source == "" {
		return fmt.Errorf("%q: want NAME=SOURCE, SOURCE one of %s", s, identitySources)
	}
	if err := checkLabel(name, source); err != nil {
		return err
	}
	if *v == nil {
		*v = map[string]string{}
	}
	(*v)[name] = source
	return nil
}
