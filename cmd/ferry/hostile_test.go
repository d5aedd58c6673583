package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferry-agent/ferry/agent/remotewrite/carry"
	"github.com/ferry-agent/ferry/agent/remotewrite/codec"
	"github.com/ferry-agent/ferry/buffer"
)

// TestPushOfAHostileFileStaysBounded: a 3 MB carry file whose one record
// decompresses to 64 MiB of empty series (33 M of them; its header says
// one sample) once made push allocate 9.5 GB. Now the record is refused at
// its first series, one that holds more samples than its header says at
// the sample over, and the rest of the file goes.
func TestPushOfAHostileFileStaysBounded(t *testing.T) {
	empty := make([]byte, carry.MaxDecodedBody)
	for i := 0; i < len(empty); i += 2 {
		empty[i] = 1<<3 | 2 // TimeSeries, length 0
	}
	oneSeries := func(ts ...int64) []byte {
		body, _ := codec.EncodeRequest([]buffer.Block{{Series: []buffer.Series{{Labels: labels.FromStrings("__name__", "m"), T: ts, V: make([]float64, len(ts))}}}})
		return body
	}
	many := make([]int64, 100_000)
	for i := range many {
		many[i] = int64(i + 1)
	}
	var file bytes.Buffer
	w, err := carry.NewWriter(&file)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range []carry.Record{
		{Samples: 1, MinT: 1, MaxT: 1, Body: snappy.Encode(nil, empty)},
		{Samples: 1, MinT: 1, MaxT: 1, Body: oneSeries(many...)},
		{Samples: 1, MinT: 5, MaxT: 5, Body: oneSeries(5)},
	} {
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if file.Len() > 4<<20 {
		t.Fatalf("the hostile file is %d bytes; the test wants a small one", file.Len())
	}
	path := filepath.Join(t.TempDir(), "hostile.carry")
	if err := os.WriteFile(path, file.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	recv := newReceiver(t, ok)
	var stdout, stderr bytes.Buffer
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	code := run(pushArgs(path, recv.URL), &stdout, &stderr)
	runtime.ReadMemStats(&after)
	// The 64 MiB body decompressed, and not much more.
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("push of a %d-byte hostile file allocated %d MiB", file.Len(), alloc>>20)
	if alloc > 160<<20 {
		t.Errorf("push of a %d-byte file allocated %d MiB", file.Len(), alloc>>20)
	}
	if code != exitPushIncomplete {
		t.Errorf("exit %d, want %d: %s", code, exitPushIncomplete, stderr.String())
	}
	if got := recv.received(); len(got) != 1 {
		t.Errorf("%d requests sent, want the one intact request", len(got))
	}
	out := stderr.String()
	for _, want := range []string{"request 1: request: series 0: 0 labels, 0 samples", "request 2: request: more than the 1 samples it may hold", "1 samples accepted"} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr lacks %q:\n%s", want, out)
		}
	}
}
