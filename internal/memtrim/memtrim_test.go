package memtrim

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestCodeSpans(t *testing.T) {
	const exe = "/usr/bin/ferry agent"
	maps := `00400000-00895000 r-xp 00000000 fe:00 9986275                            /usr/bin/ferry agent
00895000-00d30000 r--p 00495000 fe:00 9986275                            /usr/bin/ferry agent
00d30000-00d97000 rw-p 00930000 fe:00 9986275                            /usr/bin/ferry agent
00d97000-02ddb000 rw-p 00000000 00:00 0
7f0000000000-7f0000001000 r--p 00000000 fe:00 12                         /usr/bin/ferry
7f0000001000-7f0000002000 r-xp 00000000 fe:00 13                         /usr/bin/ferry agent.old
7ffd1000-7ffd0000 r--p 00000000 fe:00 9986275                            /usr/bin/ferry agent
zz-7ffd2000 r--p 00000000 fe:00 9986275                            /usr/bin/ferry agent
7ffd2000 r--p 00000000 fe:00 9986275                            /usr/bin/ferry agent
7ffd9000-7ffdb000 r-xp 00000000 00:00 0                                  [vdso]
`
	got := codeSpans(maps, exe)
	want := []span{{0x400000, 0x895000}, {0x895000, 0xd30000}}
	if !slices.Equal(got, want) {
		t.Errorf("codeSpans = %x, want %x (the code and read-only data of the executable alone)", got, want)
	}
	if got := codeSpans(maps, "/usr/bin/ferry agent (deleted)"); len(got) != 0 {
		t.Errorf("another path: %x, want none", got)
	}
}

// TestReleaseCodeTakesItOutOfMemory: this test binary's code and read-only
// data, mapped and mostly in memory, leave it; what the test runs after
// the call comes back, far less.
func TestReleaseCodeTakesItOutOfMemory(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Linux only")
	}
	if os.Getenv("FERRY_TEST_EXEC") != "" {
		t.Skip("under qemu-user, madvise's advice is taken and not acted on")
	}
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	before := codeRSS(t, exe)
	mapped, err := ReleaseCode()
	if err != nil {
		t.Fatal(err)
	}
	after := codeRSS(t, exe)
	if mapped == 0 || before < 256<<10 || after > before/2 {
		t.Errorf("code in memory %d bytes before, %d after, of %d mapped: want it halved at least", before, after, mapped)
	}
	t.Logf("code in memory: %d KiB before, %d KiB after, of %d KiB mapped", before>>10, after>>10, mapped>>10)
}

// codeRSS is how much of the executable's read-only mappings is in memory
// (/proc/self/smaps).
func codeRSS(t *testing.T, exe string) int {
	t.Helper()
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	rss, in := 0, false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 5 && strings.Count(f[0], "-") == 1 && len(f[1]) == 4: // a mapping's first line
			in = len(f) >= 6 && strings.Join(f[5:], " ") == exe && f[1][1] != 'w'
		case len(f) == 3 && f[0] == "Rss:" && in:
			kb, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatal(err)
			}
			rss += kb << 10
		}
	}
	return rss
}
