package bench

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferry-agent/ferry/agent"
	"github.com/ferry-agent/ferry/agent/config"
	"github.com/ferry-agent/ferry/buffer"
)

// BenchmarkBufferBytesPerSample fills a buffer as ferry does on a device
// (10k application series plus node_exporter's families, scraped every
// 15 s, committed every --storage.sync-interval) for one simulated hour per
// iteration, and reports the bytes the file holds and the bytes the
// process wrote to the device (/proc/self/io write_bytes: every page bbolt
// wrote, meta pages included) per sample.
//
// The buffer lives under $FERRY_BENCH_DIR (default: the package directory)
// because tmpfs writes are not counted.
func BenchmarkBufferBytesPerSample(b *testing.B) {
	type scenario struct {
		sync    time.Duration
		drained bool // the link is up: the sender reads and acknowledges after each commit
	}
	for _, sc := range []scenario{
		{15 * time.Second, false}, {30 * time.Second, false}, {time.Minute, false}, {2 * time.Minute, false},
		{time.Minute, true},
	} {
		sync := sc.sync
		name := "sync=" + sync.String()
		if sc.drained {
			name += "/link-up"
		}
		b.Run(name, func(b *testing.B) {
			const interval = 15 * time.Second
			scrapesPerCommit := int(sync / interval)
			var fileBytes, used, written, samples float64
			for range b.N {
				dir, err := os.MkdirTemp(os.Getenv("FERRY_BENCH_DIR"), "bench-buffer-")
				if err != nil {
					b.Fatal(err)
				}
				buf, err := buffer.Open(buffer.Options{Dir: dir, MaxSize: 1 << 30})
				if err != nil {
					b.Fatal(err)
				}
				w := NewWorkload(10_000, 1)
				t := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
				before := writeBytes(b)
				n := 0
				for scrape := 1; scrape <= int(time.Hour/interval); scrape++ {
					t += interval.Milliseconds()
					w.Next(func(_ int, lset labels.Labels, v float64) {
						buf.Append(lset, t, v)
						n++
					})
					if scrape%scrapesPerCommit == 0 {
						if err := buf.Commit(); err != nil {
							b.Fatal(err)
						}
						if sc.drained {
							drainAsTheSenderDoes(b, buf)
						}
					}
				}
				if !sc.drained {
					used += float64(buf.Stats().UsedBytes)
				}
				if err := buf.Close(); err != nil {
					b.Fatal(err)
				}
				written += float64(writeBytes(b) - before)
				fi, err := os.Stat(dir + "/" + buffer.FileName)
				if err != nil {
					b.Fatal(err)
				}
				if !sc.drained { // drained, nothing stays: only the writes matter
					fileBytes += float64(fi.Size())
				}
				samples += float64(n)
				os.RemoveAll(dir)
			}
			b.ReportMetric(fileBytes/samples, "file-B/sample")
			b.ReportMetric(used/samples, "used-B/sample")
			b.ReportMetric(written/samples, "written-B/sample")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// drainAsTheSenderDoes reads everything, one request of the default 5000
// samples at a time, and deletes what it read as the sender does: every
// 50k samples and once caught up.
func drainAsTheSenderDoes(b *testing.B, buf *buffer.Buffer) {
	var next, last uint64
	unacked := 0
	for {
		blocks, err := buf.Read(next, 5000)
		if err != nil {
			b.Fatal(err)
		}
		if len(blocks) == 0 {
			break
		}
		last = blocks[len(blocks)-1].Seq
		next = last + 1
		for _, blk := range blocks {
			unacked += blk.Samples()
		}
		if unacked >= 50_000 {
			if err := buf.Ack(last); err != nil {
				b.Fatal(err)
			}
			unacked = 0
		}
	}
	if unacked > 0 {
		if err := buf.Ack(last); err != nil {
			b.Fatal(err)
		}
	}
}

// writeBytes reads the bytes this process caused to be written to storage.
func writeBytes(b *testing.B) int64 {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		b.Skip("no /proc/self/io")
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "write_bytes: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	b.Skip("no write_bytes in /proc/self/io")
	return 0
}

// BenchmarkBufferHistoryAtCap fills a buffer with an 8 MiB cap until it
// has been evicting for a while, with the default sync interval (1m), and
// reports how many bytes of the cap each held sample costs: the figure that
// says how much history a device keeps.
func BenchmarkBufferHistoryAtCap(b *testing.B) {
	const maxSize, interval, scrapesPerCommit = 8 << 20, 15 * time.Second, 4
	var perSample, hours float64
	for range b.N {
		dir, err := os.MkdirTemp(os.Getenv("FERRY_BENCH_DIR"), "bench-buffer-")
		if err != nil {
			b.Fatal(err)
		}
		buf, err := buffer.Open(buffer.Options{Dir: dir, MaxSize: maxSize})
		if err != nil {
			b.Fatal(err)
		}
		w := NewWorkload(1_000, 2)
		t := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
		evicting := 0
		for scrape := 1; evicting < 100; scrape++ {
			t += interval.Milliseconds()
			w.Next(func(_ int, lset labels.Labels, v float64) { buf.Append(lset, t, v) })
			if scrape%scrapesPerCommit == 0 {
				if err := buf.Commit(); err != nil {
					b.Fatal(err)
				}
				if buf.Stats().Dropped[buffer.ReasonFull] > 0 {
					evicting++
				}
			}
		}
		st := buf.Stats()
		if st.FileBytes > maxSize {
			b.Fatalf("file %d bytes over the cap %d", st.FileBytes, maxSize)
		}
		perSample += float64(maxSize) / float64(st.Samples)
		hours += float64(st.NewestT-st.OldestT) / float64(time.Hour.Milliseconds())
		buf.Close()
		os.RemoveAll(dir)
	}
	n := float64(b.N)
	b.ReportMetric(perSample/n, "cap-B/sample")
	b.ReportMetric(hours/n, "hours-held")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkBufferThinning runs a long outage (the realistic workload of a
// thousand series at 15 s) into a 4 MiB buffer, once evicting the oldest
// data and once thinning it (--storage.thin), with a commit every minute
// (the default) and every five, and reports how much of the outage each
// keeps; -v logs the samples kept of one series per sixth of the outage:
// the trade-off in the README.
func BenchmarkBufferThinning(b *testing.B) {
	const maxSize, interval, hours = 4 << 20, 15 * time.Second, 48
	for _, tc := range []struct {
		sync time.Duration
		thin bool
	}{{time.Minute, false}, {time.Minute, true}, {5 * time.Minute, false}, {5 * time.Minute, true}} {
		thin, scrapesPerCommit := tc.thin, int(tc.sync/interval)
		b.Run(fmt.Sprintf("sync=%s/thin=%v", tc.sync, thin), func(b *testing.B) {
			var held, kept float64
			for range b.N {
				dir, err := os.MkdirTemp(os.Getenv("FERRY_BENCH_DIR"), "bench-thin-")
				if err != nil {
					b.Fatal(err)
				}
				buf, err := buffer.Open(buffer.Options{Dir: dir, MaxSize: maxSize, Thin: thin})
				if err != nil {
					b.Fatal(err)
				}
				w := NewWorkload(1_000, 3)
				start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
				t := start
				probe := w.Series[0]
				for scrape := 1; scrape <= hours*3600/15; scrape++ {
					t += interval.Milliseconds()
					w.Next(func(_ int, lset labels.Labels, v float64) { buf.Append(lset, t, v) })
					if scrape%scrapesPerCommit == 0 {
						if err := buf.Commit(); err != nil {
							b.Fatal(err)
						}
					}
				}
				var bands [6]int
				err = buf.ForEach(func(blk buffer.Block) error {
					for _, s := range blk.Series {
						if labels.Equal(s.Labels, probe) {
							for _, ts := range s.T {
								bands[min(5, int((ts-start)*6/(t-start)))]++
							}
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				st := buf.Stats()
				if st.FileBytes > maxSize {
					b.Fatalf("file %d bytes over the cap %d", st.FileBytes, maxSize)
				}
				held += float64(t-st.OldestT) / float64(time.Hour.Milliseconds())
				kept += float64(st.Samples)
				b.Logf("sync=%s thin=%v: %d h outage, %d series at 15 s, 4 MiB: oldest sample %.1f h before the end; samples of one series kept per %d h, oldest first (of %d collected each): %v",
					tc.sync, thin, hours, len(w.Series), float64(t-st.OldestT)/3.6e6, hours/6, hours*3600/15/6, bands)
				buf.Close()
				os.RemoveAll(dir)
			}
			b.ReportMetric(held/float64(b.N), "hours-held")
			b.ReportMetric(kept/float64(b.N), "samples-kept")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkBufferOutagePolicies compares, per workload, what the buffer
// writes to the device per sample during an outage under two policies, over
// one simulated hour:
//
//   - commit=1m: the head committed (and fsynced) every minute, the way
//     ferry worked before the journal: a killed process lost up to a minute.
//   - journal: the agent's schedule: the head appended to the journal every
//     agent.JournalTick (a killed process loses a second or two), the journal
//     synced every --storage.sync-interval at its default (a power cut loses
//     at most that), and committed every agent.CommitInterval or when the
//     head or journal reaches its bound.
//
// and with the link up (the sender takes each collection from memory).
// A one-second journal tick is simulated as one Journal call per scrape:
// each collection is written once, at the tick after the one that saw it.
func BenchmarkBufferOutagePolicies(b *testing.B) {
	syncInterval := config.DefaultConfig().SyncInterval
	type workload struct {
		name     string
		app      int
		interval time.Duration
	}
	for _, wl := range []workload{{"typical-1k-15s", 800, 15 * time.Second}, {"heavy-10k-5s", 10_000, 5 * time.Second}} {
		for _, policy := range []string{"commit=1m", "journal", "link-up"} {
			b.Run(wl.name+"/"+policy, func(b *testing.B) {
				var written, samples float64
				for range b.N {
					dir, err := os.MkdirTemp(os.Getenv("FERRY_BENCH_DIR"), "bench-buffer-")
					if err != nil {
						b.Fatal(err)
					}
					buf, err := buffer.Open(buffer.Options{Dir: dir, MaxSize: 1 << 30})
					if err != nil {
						b.Fatal(err)
					}
					w := NewWorkload(wl.app, 1)
					start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
					before := writeBytes(b)
					n := 0
					var lastCommit, lastSync time.Time = start, start
					for now := start.Add(wl.interval); now.Sub(start) <= time.Hour; now = now.Add(wl.interval) {
						w.Next(func(_ int, lset labels.Labels, v float64) {
							buf.Append(lset, now.UnixMilli(), v)
							n++
						})
						check := func(err error) {
							if err != nil {
								b.Fatal(err)
							}
						}
						switch policy {
						case "commit=1m":
							if now.Sub(lastCommit) >= time.Minute {
								check(buf.Commit())
								lastCommit = now
							}
						case "journal":
							check(buf.Journal())
							full := false
							select {
							case <-buf.HeadFull():
								full = true
							default:
							}
							if full || now.Sub(lastCommit) >= agent.CommitInterval {
								check(buf.Commit())
								lastCommit, lastSync = now, now
							} else if now.Sub(lastSync) >= syncInterval {
								check(buf.Sync())
								lastSync = now
							}
						case "link-up":
							for {
								if _, ok := buf.TakeLive(5000, false); !ok {
									break
								}
								buf.LiveDone()
							}
							check(buf.Journal())
							if now.Sub(lastSync) >= syncInterval {
								check(buf.Sync())
								lastSync = now
							}
							if now.Sub(lastCommit) >= agent.CommitInterval {
								check(buf.Commit())
								lastCommit = now
							}
						}
					}
					if err := buf.Close(); err != nil {
						b.Fatal(err)
					}
					written += float64(writeBytes(b) - before)
					samples += float64(n)
					os.RemoveAll(dir)
				}
				b.ReportMetric(written/samples, "written-B/sample")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}
