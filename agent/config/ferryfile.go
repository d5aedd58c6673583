package config

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// ferrySection is the config file's top-level "ferry:" section: the
// settings of ferry's flags that prometheus.yml has no field for, so that
// the file can carry everything a device runs with. Each field is named
// after its flag (README.md, "The ferry section", lists them); a flag
// given on the command line wins over its field. Paths are taken as given,
// relative to ferry's working directory as the flags' are.
type ferrySection struct {
	Storage struct {
		Path         string         `yaml:"path"`
		MaxSize      *fileSize      `yaml:"max_size"`
		SyncInterval model.Duration `yaml:"sync_interval"`
		Thin         *bool          `yaml:"thin"`
	} `yaml:"storage"`
	RemoteWrite struct {
		FreshFirst        *bool     `yaml:"fresh_first"`
		MaxBytesPerSecond *fileSize `yaml:"max_bytes_per_second"`
		// A fleet's reconnect: the jitter after an outage, the backlog's rate.
		ReconnectJitter       *model.Duration `yaml:"reconnect_jitter"`
		BacklogBytesPerSecond *fileSize       `yaml:"backlog_bytes_per_second"`
		MaxBytesPerDay        *fileSize       `yaml:"max_bytes_per_day"`
	} `yaml:"remote_write"`
	Clock struct {
		RequireSync *bool `yaml:"require_sync"`
	} `yaml:"clock"`
	// The device's identity: instance of the host's and ferry's own series,
	// labels read on the device.
	Instance           string            `yaml:"instance"`
	InstanceFrom       string            `yaml:"instance_from"`
	ExternalLabelFile  string            `yaml:"external_label_file"`
	ExternalLabelsFrom map[string]string `yaml:"external_labels_from"`
	Collectors         map[string]bool   `yaml:"collectors"`
	Web                struct {
		ListenAddress *string `yaml:"listen_address"`
	} `yaml:"web"`
	Log struct {
		Level *levelValue `yaml:"level"`
	} `yaml:"log"`
	Paths struct {
		ProcFS string `yaml:"procfs"`
		SysFS  string `yaml:"sysfs"`
		RootFS string `yaml:"rootfs"`
	} `yaml:"paths"`
}

// fileSize is a byte size in the file: a number of bytes, or a string with
// a unit as the flags take (64MiB, 512MB meaning MiB as in Prometheus).
type fileSize sizeValue

func (s *fileSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a size such as 64MiB", n.Line)
	}
	if err := (*sizeValue)(s).Set(n.Value); err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	return nil
}

func (l *levelValue) UnmarshalYAML(n *yaml.Node) error {
	if err := l.Set(n.Value); err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	return nil
}

// fileIdentity is what the ferry section says about the device's identity
// and collectors; Finish resolves it under the flags, as it reads devices'
// files and knows the collectors' names.
type fileIdentity struct {
	instance, instanceFrom string
	labelFile              string
	labelsFrom             map[string]string
	collectors             map[string]bool
}

// apply sets cfg's fields from the section, except those whose flag was
// given, and returns the part Finish resolves. Errors name the line.
func (fs *ferrySection) apply(cfg *Config, changed func(flag string) bool, doc *yaml.Node) (fileIdentity, error) {
	line := func(path ...any) int { return keyLine(doc, append([]any{"ferry"}, path...)...) }
	set := func(flag string, ok bool, apply func()) {
		if ok && !changed(flag) {
			apply()
		}
	}
	st := &fs.Storage
	// What Validate would refuse naming the flag is refused here naming
	// the line: an error never names a flag the user did not give.
	if st.MaxSize != nil && *st.MaxSize < 1<<20 {
		return fileIdentity{}, lineErrorf(line("storage", "max_size"), "ferry.storage.max_size: %d bytes is below the minimum of 1MiB", int64(*st.MaxSize))
	}
	if fs.Web.ListenAddress != nil {
		if err := checkListenAddress(*fs.Web.ListenAddress); err != nil {
			return fileIdentity{}, lineErrorf(line("web", "listen_address"), "ferry.web.listen_address: %w", err)
		}
	}
	set("storage.path", st.Path != "", func() { cfg.StoragePath = st.Path })
	set("storage.max-size", st.MaxSize != nil, func() { cfg.StorageMaxSize = int64(*st.MaxSize) })
	if st.SyncInterval < 0 || (st.SyncInterval == 0 && lookup(doc, "ferry", "storage", "sync_interval") != nil) {
		return fileIdentity{}, lineErrorf(line("storage", "sync_interval"), "ferry.storage.sync_interval: must be positive")
	}
	set("storage.sync-interval", st.SyncInterval != 0, func() { cfg.SyncInterval = time.Duration(st.SyncInterval) })
	set("storage.thin", st.Thin != nil, func() { cfg.StorageThin = *st.Thin })
	rw := &fs.RemoteWrite
	set("remote-write.fresh-first", rw.FreshFirst != nil, func() { cfg.RemoteWrite.FreshFirst = *rw.FreshFirst })
	set("remote-write.max-bytes-per-second", rw.MaxBytesPerSecond != nil, func() { cfg.RemoteWrite.MaxBytesPerSecond = int64(*rw.MaxBytesPerSecond) })
	set("remote-write.max-bytes-per-day", rw.MaxBytesPerDay != nil, func() { cfg.RemoteWrite.MaxBytesPerDay = int64(*rw.MaxBytesPerDay) })
	set("remote-write.reconnect-jitter", rw.ReconnectJitter != nil, func() { cfg.RemoteWrite.ReconnectJitter = time.Duration(*rw.ReconnectJitter) })
	set("remote-write.backlog-bytes-per-second", rw.BacklogBytesPerSecond != nil, func() {
		cfg.RemoteWrite.BacklogBytesPerSecond = int64(*rw.BacklogBytesPerSecond)
	})
	set("clock.require-sync", fs.Clock.RequireSync != nil, func() { cfg.ClockRequireSync = *fs.Clock.RequireSync })
	set("web.listen-address", fs.Web.ListenAddress != nil, func() { cfg.ListenAddress = *fs.Web.ListenAddress })
	set("log.level", fs.Log.Level != nil, func() { cfg.LogLevel = slog.Level(*fs.Log.Level) })
	set("path.procfs", fs.Paths.ProcFS != "", func() { cfg.Paths.ProcFS = fs.Paths.ProcFS })
	set("path.sysfs", fs.Paths.SysFS != "", func() { cfg.Paths.SysFS = fs.Paths.SysFS })
	set("path.rootfs", fs.Paths.RootFS != "", func() { cfg.Paths.RootFS = fs.Paths.RootFS })

	id := fileIdentity{instance: fs.Instance, instanceFrom: fs.InstanceFrom, labelFile: fs.ExternalLabelFile,
		labelsFrom: fs.ExternalLabelsFrom, collectors: fs.Collectors}
	if fs.Instance != "" {
		if err := checkLabel(model.InstanceLabel, fs.Instance); err != nil {
			return id, lineErrorf(line("instance"), "ferry.instance: %w", err)
		}
	}
	if fs.InstanceFrom != "" {
		if err := checkSource(fs.InstanceFrom); err != nil {
			return id, lineErrorf(line("instance_from"), "ferry.instance_from: %w", err)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(fs.ExternalLabelsFrom)) {
		var v identityValue
		if err := v.Set(name + "=" + fs.ExternalLabelsFrom[name]); err != nil {
			return id, lineErrorf(line("external_labels_from", name), "ferry.external_labels_from: %w", err)
		}
		if err := checkSource(fs.ExternalLabelsFrom[name]); err != nil {
			return id, lineErrorf(line("external_labels_from", name), "ferry.external_labels_from: %s: %w", name, err)
		}
	}
	return id, nil
}
