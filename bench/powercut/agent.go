package main

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Agent is what the rig needs to know about an agent under test; another
// agent plugs in with its own implementation.
type Agent interface {
	// GuestFiles maps a path in the guest to the host file to put there.
	GuestFiles() map[string]string
	// RunCommand runs the agent in the guest (busybox sh), its data under
	// /data, its output on the console.
	RunCommand() string
	// InspectCommand runs in the guest after each boot, before the agent:
	// it opens the agent's data the way the device would and copies what
	// the host needs into /out. A non-zero status means the data did not
	// open.
	InspectCommand() string
	// ParseConsole reads one console line of the agent: a claim of what
	// it holds durably, that it has started, or trouble at start.
	ParseConsole(line string) ConsoleEvent
	// Recovered reads what the agent recovered from the files its inspect
	// command left in dir on the host.
	Recovered(dir string) (Recovered, error)
	// MaxBytes is the size bound the agent was given for its data.
	MaxBytes() int64
}

// ConsoleEvent is what one console line of the agent says.
type ConsoleEvent struct {
	Claim   *Claim
	Started bool
	Trouble string // non-empty: the start was not clean
}

// Claim is the agent's own statement that all of Samples, the newest at
// Newest (ms), are durable: what must survive any later power cut.
type Claim struct {
	Samples int
	Newest  int64
}

// Recovered is what the agent's data holds after a boot.
type Recovered struct {
	Samples   []Sample
	DataBytes int64 // the size of its data on disk, against MaxBytes
}

// Sample identifies one stored sample: its series and timestamp (ms).
type Sample struct {
	Series string
	T      int64
}

// ferryAgent runs ferry with its buffer on the data disk, scraping itself
// besides the host collectors, and sending to a port where nothing
// listens, so that everything stays in the buffer.
type ferryAgent struct {
	binary         string // static, for the guest; also runs the export on the host
	syncInterval   time.Duration
	scrapeInterval time.Duration
	maxBytes       int64
}

func (f ferryAgent) GuestFiles() map[string]string { return map[string]string{"/bin/ferry": f.binary} }
func (f ferryAgent) MaxBytes() int64               { return f.maxBytes }

func (f ferryAgent) RunCommand() string {
	return fmt.Sprintf("ferry --storage.path=/data/ferry --storage.max-size=%d --storage.sync-interval=%s "+
		"--scrape.interval=%s --scrape.target=self=127.0.0.1:9391 --remote-write.url=http://127.0.0.1:9/api/v1/write "+
		"--log.level=debug", f.maxBytes, f.syncInterval, f.scrapeInterval)
}

func (f ferryAgent) InspectCommand() string {
	return `ls -l /data/ferry
[ -e /data/ferry/ferry.db ] || exit 0
ferry buffer stat --storage.path=/data/ferry || exit 1
cp /data/ferry/ferry.db /out/ferry.db
[ ! -e /data/ferry/ferry.db.journal ] || cp /data/ferry/ferry.db.journal /out/`
}

// The debug lines agent/agent.go logs after each commit and each sync of
// the journal (what a power cut must leave), and lines that say the buffer
// was not found as it was left.
var (
	ferryCommitted = regexp.MustCompile(`msg=(?:committed|synced) buffered_samples=(\d+) newest_ms=(\d+)`)
	ferryTrouble   = regexp.MustCompile(`moving it aside|buffer block unreadable|cannot open the buffer|committing to the buffer|panic:`)
)

func (f ferryAgent) ParseConsole(line string) ConsoleEvent {
	if m := ferryCommitted.FindStringSubmatch(line); m != nil {
		n, _ := strconv.Atoi(m[1])
		t, _ := strconv.ParseInt(m[2], 10, 64)
		return ConsoleEvent{Claim: &Claim{Samples: n, Newest: t}}
	}
	if strings.Contains(line, `msg="ferry started"`) {
		return ConsoleEvent{Started: true}
	}
	if m := ferryTrouble.FindString(line); m != "" {
		return ConsoleEvent{Trouble: m}
	}
	return ConsoleEvent{}
}

// Recovered exports the buffer file with ferry on the host and reads each
// line "series value timestamp" (label values may hold spaces, so the
// last two fields are split off from the right).
func (f ferryAgent) Recovered(dir string) (Recovered, error) {
	db := filepath.Join(dir, "ferry.db")
	fi, err := os.Stat(db)
	if os.IsNotExist(err) {
		return Recovered{}, nil
	}
	if err != nil {
		return Recovered{}, err
	}
	var out, errOut bytes.Buffer
	cmd := exec.Command(f.binary, "buffer", "export", "--storage.path="+dir)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return Recovered{}, fmt.Errorf("ferry buffer export: %v: %s", err, errOut.String())
	}
	rec := Recovered{DataBytes: fi.Size()}
	sc := bufio.NewScanner(&out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		j := strings.LastIndexByte(line[:max(i, 0)], ' ')
		if j < 0 {
			return Recovered{}, fmt.Errorf("export: bad line %q", line)
		}
		sec, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return Recovered{}, fmt.Errorf("export: bad timestamp in %q", line)
		}
		rec.Samples = append(rec.Samples, Sample{Series: line[:j], T: int64(math.Round(sec * 1000))})
	}
	return rec, sc.Err()
}
