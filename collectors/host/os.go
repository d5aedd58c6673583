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
	"strconv"
	"strings"

	"github.com/ferry-agent/ferry/collectors"
)

var (
	osInfoDesc = collectors.NewDesc("node_os_info",
		"A metric with a constant '1' value labeled by build_id, id, id_like, image_id, image_version, name, pretty_name, variant, variant_id, version, version_codename, version_id.",
		collectors.Gauge, "build_id", "id", "id_like", "image_id", "image_version", "name", "pretty_name",
		"variant", "variant_id", "version", "version_codename", "version_id")
	osVersionDesc = collectors.NewDesc("node_os_version",
		"Metric containing the major.minor part of the OS version.", collectors.Gauge, "id", "id_like", "name")
)

// osReleaseFiles are tried in order under the root filesystem, as
// os-release(5) says. OpenWrt has both (the first a symlink to the second).
var osReleaseFiles = []string{"etc/os-release", "usr/lib/os-release"}

var osVersionPrefix = regexp.MustCompile(`^[0-9]+\.?[0-9]*`)

type osCollector struct{ root string }

func newOS(p collectors.Paths) collectors.Collector {
	root := p.RootFS
	if root == "" {
		root = "/"
	}
	return &osCollector{root: root}
}

func (c *osCollector) Collect(_ context.Context, out *collectors.Collection) error {
	var f *os.File
	var err error
	for _, name := range osReleaseFiles {
		f, err = os.Open(filepath.Join(c.root, name))
		if !errors.Is(err, os.ErrNotExist) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("os: %w", err)
	}
	defer f.Close()
	kv, err := parseOSRelease(f)
	if err != nil {
		return fmt.Errorf("os: %s: %w", f.Name(), err)
	}
	out.Add(osInfoDesc, 1, kv["BUILD_ID"], kv["ID"], kv["ID_LIKE"], kv["IMAGE_ID"], kv["IMAGE_VERSION"],
		kv["NAME"], kv["PRETTY_NAME"], kv["VARIANT"], kv["VARIANT_ID"], kv["VERSION"],
		kv["VERSION_CODENAME"], kv["VERSION_ID"])
	if v, err := strconv.ParseFloat(osVersionPrefix.FindString(kv["VERSION_ID"]), 64); err == nil {
		out.Add(osVersionDesc, v, kv["ID"], kv["ID_LIKE"], kv["NAME"])
	}
	return nil
}

// osReleaseUnescaper resolves the shell escapes os-release(5) allows in
// double quotes.
var osReleaseUnescaper = strings.NewReplacer(`\"`, `"`, `\\`, `\`, `\$`, `$`, "\\`", "`")

// parseOSRelease reads os-release(5): KEY=value lines, values optionally
// in single or double quotes, comments and blank lines ignored.
func parseOSRelease(r io.Reader) (map[string]string, error) {
	kv := map[string]string{}
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		key, value, ok := strings.Cut(text, "=")
		if !ok || key == "" || strings.ContainsAny(key, " \t") {
			return nil, fmt.Errorf("line %d: not KEY=value: %q", line, text)
		}
		if n := len(value); n >= 2 && (value[0] == '"' || value[0] == '\'') {
			if value[n-1] != value[0] {
				return nil, fmt.Errorf("line %d: unterminated quote", line)
			}
			value = value[1 : n-1]
			if text[len(key)+1] == '"' {
				value = osReleaseUnescaper.Replace(value)
			}
		}
		kv[key] = value
	}
	return kv, sc.Err()
}
