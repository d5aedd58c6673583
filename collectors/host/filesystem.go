package host

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ferry-agent/ferry/collectors"
)

// node_exporter's defaults for --collector.filesystem.mount-points-exclude
// and --collector.filesystem.fs-types-exclude (1.x, Linux).
var (
	fsMountPointsExclude = regexp.MustCompile(`^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)`)
	fsTypesExclude       = regexp.MustCompile(`^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$`)
)

var (
	fsSizeDesc = collectors.NewDesc("node_filesystem_size_bytes",
		"Filesystem size in bytes.", collectors.Gauge, "device", "fstype", "mountpoint")
	fsFreeDesc = collectors.NewDesc("node_filesystem_free_bytes",
		"Filesystem free space in bytes.", collectors.Gauge, "device", "fstype", "mountpoint")
	fsAvailDesc = collectors.NewDesc("node_filesystem_avail_bytes",
		"Filesystem space available to non-root users in bytes.", collectors.Gauge, "device", "fstype", "mountpoint")
	fsFilesDesc = collectors.NewDesc("node_filesystem_files",
		"Filesystem total file nodes.", collectors.Gauge, "device", "fstype", "mountpoint")
	fsFilesFreeDesc = collectors.NewDesc("node_filesystem_files_free",
		"Filesystem total free file nodes.", collectors.Gauge, "device", "fstype", "mountpoint")
	fsReadonlyDesc = collectors.NewDesc("node_filesystem_readonly",
		"Filesystem read-only status.", collectors.Gauge, "device", "fstype", "mountpoint")
	fsDeviceErrorDesc = collectors.NewDesc("node_filesystem_device_error",
		"Whether an error occurred while getting statistics for the given device.", collectors.Gauge, "device", "fstype", "mountpoint")
)

// fsStatTimeout bounds one statfs call, as node_exporter's
// --collector.filesystem.mount-timeout (5s) does: a hung NFS or CIFS server
// must not stall the collection.
const fsStatTimeout = 5 * time.Second

// fsStats is what statfs(2) says of one filesystem, in node_exporter's units.
type fsStats struct {
	size, free, avail, files, filesFree float64
}

type filesystemCollector struct {
	paths   collectors.Paths
	statfs  func(path string) (fsStats, error) // replaced in tests
	timeout time.Duration

	mu    sync.Mutex
	stuck map[string]bool // mount points whose statfs has not returned yet
}

func newFilesystem(p collectors.Paths) collectors.Collector {
	return &filesystemCollector{paths: p, statfs: statfs, timeout: fsStatTimeout, stuck: map[string]bool{}}
}

func statfs(path string) (fsStats, error) {
	var buf syscall.Statfs_t
	if err := syscall.Statfs(path, &buf); err != nil {
		return fsStats{}, err
	}
	// node_exporter multiplies by Bsize, not Frsize; so do we.
	bs := float64(buf.Bsize)
	return fsStats{
		size:      float64(buf.Blocks) * bs,
		free:      float64(buf.Bfree) * bs,
		avail:     float64(buf.Bavail) * bs,
		files:     float64(buf.Files),
		filesFree: float64(buf.Ffree),
	}, nil
}

// mount is one line of /proc/PID/mounts.
type mount struct {
	device, mountPoint, fsType, options string
}

type fsResult struct {
	mount
	stats fsStats
	err   bool
}

func (c *filesystemCollector) Collect(ctx context.Context, out *collectors.Collection) error {
	// Like node_exporter: the mounts of init, which sees the host's mounts
	// when ferry runs in a container with the host's /proc; our own otherwise.
	path := filepath.Join(c.paths.ProcFS, "1", "mounts")
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		path = filepath.Join(c.paths.ProcFS, "self", "mounts")
		f, err = os.Open(path)
	}
	if err != nil {
		return fmt.Errorf("filesystem: %w", err)
	}
	mounts, err := parseMounts(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("filesystem: %s: %w", path, err)
	}

	var results []fsResult
	seen := map[mount]bool{}
	for _, m := range mounts {
		m.mountPoint = c.stripRootFS(m.mountPoint)
		if fsMountPointsExclude.MatchString(m.mountPoint) || fsTypesExclude.MatchString(m.fsType) {
			continue
		}
		key := mount{device: m.device, mountPoint: m.mountPoint, fsType: m.fsType}
		if seen[key] { // the same filesystem mounted over itself: once
			continue
		}
		seen[key] = true
		st, ok := c.stat(ctx, m.mountPoint)
		results = append(results, fsResult{mount: m, stats: st, err: !ok})
	}

	emit := func(d *collectors.Desc, v func(fsResult) float64, all bool) {
		for _, r := range results {
			if r.err && !all {
				continue
			}
			out.Add(d, v(r), r.device, r.fsType, r.mountPoint)
		}
	}
	emit(fsSizeDesc, func(r fsResult) float64 { return r.stats.size }, false)
	emit(fsFreeDesc, func(r fsResult) float64 { return r.stats.free }, false)
	emit(fsAvailDesc, func(r fsResult) float64 { return r.stats.avail }, false)
	emit(fsFilesDesc, func(r fsResult) float64 { return r.stats.files }, false)
	emit(fsFilesFreeDesc, func(r fsResult) float64 { return r.stats.filesFree }, false)
	emit(fsReadonlyDesc, func(r fsResult) float64 { return boolValue(hasOption(r.options, "ro")) }, false)
	emit(fsDeviceErrorDesc, func(r fsResult) float64 { return boolValue(r.err) }, true)
	return nil
}

// stat runs statfs on a mount point under the root filesystem with a
// timeout. A call that times out is left to finish on its own; until it
// does, the mount point is reported as an error without a new call, so hung
// mounts cannot pile up goroutines.
func (c *filesystemCollector) stat(ctx context.Context, mountPoint string) (fsStats, bool) {
	c.mu.Lock()
	if c.stuck[mountPoint] {
		c.mu.Unlock()
		return fsStats{}, false
	}
	c.mu.Unlock()

	type result struct {
		st  fsStats
		err error
	}
	done := make(chan result, 1)
	path := filepath.Join(c.rootFS(), mountPoint)
	go func() {
		st, err := c.statfs(path)
		done <- result{st, err}
	}()
	timer := time.NewTimer(c.timeout)
	defer timer.Stop()
	select {
	case r := <-done:
		return r.st, r.err == nil
	case <-timer.C:
	case <-ctx.Done():
	}
	c.mu.Lock()
	c.stuck[mountPoint] = true
	c.mu.Unlock()
	go func() {
		<-done
		c.mu.Lock()
		delete(c.stuck, mountPoint)
		c.mu.Unlock()
	}()
	return fsStats{}, false
}

func (c *filesystemCollector) rootFS() string {
	if c.paths.RootFS == "" {
		return "/"
	}
	return c.paths.RootFS
}

// stripRootFS turns a mount point seen from a container that has the
// host's / at RootFS (/host/boot) into the host's (/boot), as node_exporter
// does with --path.rootfs.
func (c *filesystemCollector) stripRootFS(mountPoint string) string {
	root := c.rootFS()
	if root == "/" {
		return mountPoint
	}
	root = strings.TrimSuffix(root, "/")
	if mountPoint != root && !strings.HasPrefix(mountPoint, root+"/") {
		return mountPoint
	}
	if stripped := strings.TrimPrefix(mountPoint, root); stripped != "" {
		return stripped
	}
	return "/"
}

// parseMounts reads /proc/PID/mounts (fstab format): device, mount point,
// type, options, dump, pass; spaces and tabs in names escaped as octal.
func parseMounts(r io.Reader) ([]mount, error) {
	var mounts []mount
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		parts := strings.Fields(sc.Text())
		if len(parts) == 0 {
			continue
		}
		if len(parts) < 4 {
			return nil, fmt.Errorf("malformed mount line %q", sc.Text())
		}
		mounts = append(mounts, mount{
			device:     unescapeMount(parts[0]),
			mountPoint: unescapeMount(parts[1]),
			fsType:     parts[2],
			options:    parts[3],
		})
	}
	return mounts, sc.Err()
}

var mountUnescaper = strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	return mountUnescaper.Replace(s)
}

func hasOption(options, want string) bool {
	for _, o := range strings.Split(options, ",") {
		if o == want {
			return true
		}
	}
	return false
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
