package lograte

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLimiterLetsOneLinePerInterval(t *testing.T) {
	var l Limiter
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		after    time.Duration
		ok       bool
		held     int
		describe string
	}{
		{0, true, 0, "the first line goes through"},
		{time.Second, false, 0, "a second later it is held"},
		{Interval - time.Second, false, 0, "still inside the interval"},
		{Interval, true, 2, "an interval later it goes, counting the two held"},
		{Interval + time.Millisecond, false, 0, "held again"},
		{-time.Hour, true, 1, "a clock stepped back lets the next one through"},
	}
	for _, s := range steps {
		ok, held := l.Allow(t0.Add(s.after))
		if ok != s.ok || held != s.held {
			t.Fatalf("%s: Allow = %v, %d; want %v, %d", s.describe, ok, held, s.ok, s.held)
		}
	}
}

func TestLimiterLogSaysHowManyWereHeld(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	l := Limiter{Every: time.Minute}
	t0 := time.Now()
	for i := range 5 {
		l.LogAt(t0.Add(time.Duration(i)*time.Second), log, slog.LevelWarn, "receiver down")
	}
	l.LogAt(t0.Add(time.Minute+4*time.Second), log, slog.LevelWarn, "receiver down")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("logged %d lines, want 2:\n%s", len(lines), out.String())
	}
	if strings.Contains(lines[0], "suppressed") || !strings.Contains(lines[1], "suppressed=4") {
		t.Fatalf("want the second line to count the 4 held back:\n%s", out.String())
	}
}
