package host

import (
	"context"
	"fmt"
	"syscall"

	"github.com/ferry-agent/ferry/collectors"
)

var unameDesc = collectors.NewDesc("node_uname_info",
	"Labeled system information as provided by the uname system call.", collectors.Gauge,
	"sysname", "release", "version", "machine", "nodename", "domainname")

// utsname is what uname(2) returns, as strings.
type utsname struct {
	sysname, release, version, machine, nodename, domainname string
}

type unameCollector struct {
	uname func() (utsname, error) // replaced in tests
}

func newUname(collectors.Paths) collectors.Collector { return &unameCollector{uname: uname} }

func (c *unameCollector) Collect(_ context.Context, out *collectors.Collection) error {
	u, err := c.uname()
	if err != nil {
		return fmt.Errorf("uname: %w", err)
	}
	out.Add(unameDesc, 1, u.sysname, u.release, u.version, u.machine, u.nodename, u.domainname)
	return nil
}

func uname() (utsname, error) {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		return utsname{}, err
	}
	return utsname{
		sysname:    utsString(u.Sysname[:]),
		release:    utsString(u.Release[:]),
		version:    utsString(u.Version[:]),
		machine:    utsString(u.Machine[:]),
		nodename:   utsString(u.Nodename[:]),
		domainname: utsString(u.Domainname[:]),
	}, nil
}

// utsString reads a NUL-terminated utsname field; its element type is int8
// on some architectures (amd64, arm64) and uint8 on others (arm).
func utsString[T int8 | uint8](field []T) string {
	b := make([]byte, 0, len(field))
	for _, c := range field {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}
