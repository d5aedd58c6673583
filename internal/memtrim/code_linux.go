//go:build linux

package memtrim

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ReleaseCode asks the kernel to page out the executable's code and
// read-only data that this process has mapped (madvise MADV_PAGEOUT), and
// to read each page again on its own when it is needed (MADV_RANDOM: no
// read-ahead around it). What the start alone ran (flag and config
// parsing, the buffer's recovery, the first collections) then leaves
// memory: the pages are clean, and those no other process maps go from
// the page cache too. The code that runs on comes back page by page.
// Without it, nearly the whole binary stays mapped: the kernel maps the
// neighbours of each page a process touches, and read-ahead brings them
// in. It reports how many bytes of mappings it advised; an error means
// some stayed as they were (a kernel before 5.4 has no MADV_PAGEOUT).
func ReleaseCode() (mapped int, err error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	spans := codeSpans(string(maps), exe)
	if len(spans) == 0 {
		return 0, fmt.Errorf("no read-only mapping of %s in /proc/self/maps", exe)
	}
	for _, s := range spans {
		mapped += int(s.end - s.start)
		for _, advice := range []uintptr{unix.MADV_RANDOM, unix.MADV_PAGEOUT} {
			// The raw call: these addresses are not Go memory.
			if _, _, e := unix.Syscall(unix.SYS_MADVISE, s.start, s.end-s.start, advice); e != 0 && err == nil {
				err = fmt.Errorf("madvise %#x-%#x, %d: %w", s.start, s.end, advice, e)
			}
		}
	}
	return mapped, err
}
