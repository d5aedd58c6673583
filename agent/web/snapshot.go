package web

import "time"

// Snapshot is the agent's state at one moment, as the status page shows
// it. The agent fills it from the same look at its figures that gives
// /metrics, so that the page and /metrics cannot disagree.
type Snapshot struct {
	Version      string
	Host         string
	Taken        time.Time     // when the figures were read
	Started      time.Time     // when the agent started
	SyncInterval time.Duration // how often the head is committed: a backlog younger than two of them is no backlog

	Buffer Buffer
	Sender *Sender // nil without a remote-write URL: nothing is sent
	// MoreSenders are the remote_write endpoints after the first (Sender).
	MoreSenders []Sender
	Clock       Clock
	Drops       []Drop      // every place and reason, zero or not
	Sources     []Source    // in the order they were configured
	Collectors  []Collector // the host collectors of the source "node", in the order they run
	History     []Point     // the last hour, oldest first, for the plots
}

// Figure is one number of /metrics: its series as /metrics writes it, e.g.
// ferry_buffer_dropped_samples_total{reason="full"}, and its value. The
// page shows both, so that tests and scripts can check it against
// /metrics.
type Figure struct {
	Series string
	Value  float64
}

// Buffer is the on-disk buffer's figures.
type Buffer struct {
	UsedBytes, FileBytes, MaxBytes       Figure
	Samples, HeadSamples, Series, Blocks Figure
	Oldest, Newest                       Figure // Unix seconds; 0 when empty
	BacklogAge                           Figure // seconds; 0 when caught up
}

// Sender is the remote-write sender's figures.
type Sender struct {
	Endpoint                  string // the endpoint label: its name, or a hash of its URL
	URL                       string // with its password, if any, redacted
	Sent, BytesSent, Failures Figure
	LastSuccess               Figure  // Unix seconds; 0 before the first
	LastError                 string  // the last failed or rejected request's; "" before one
	LastErrorUnix             float64 // its time, Unix seconds; 0 before one
	FailingSince              float64 // Unix seconds of the first failure since the receiver last answered; 0 while it answers
}

// Clock is the clock guard's figures.
type Clock struct {
	Held, Dropped Figure
	Jumps         []Jump // every direction, zero or not
}

// Jump is a count of jumps of the wall clock in one direction.
type Jump struct {
	Direction string // forward, backward
	Count     Figure
}

// Drop is a count of samples dropped at one place for one reason.
type Drop struct {
	Where  string // buffer, sender
	Reason string
	Count  Figure
}

// Source is one source on the agent's schedule.
type Source struct {
	Name             string
	LastRun          time.Time // zero before the first
	LastErr          string    // of the last run; "" when it worked
	Appended, Errors Figure
}

// Collector is a host collector and whether its last collection worked.
// Before the first collection every collector is OK.
type Collector struct {
	Name string
	OK   bool
}
