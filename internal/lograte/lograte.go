// Package lograte keeps log lines that can repeat (a failing target, a
// receiver that is down for a week) from flooding a device's small log.
package lograte

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Interval is how often a Limiter lets a line through unless told otherwise:
// often enough to see that a failure goes on, rarely enough that a week of
// it fits in a router's log.
const Interval = 30 * time.Second

// Limiter lets one line through per interval and counts the lines it holds
// back, so that the next line says how many were not logged. The zero value
// is ready to use with Interval. A Limiter is safe for concurrent use.
type Limiter struct {
	// Every overrides Interval when set; set it before first use.
	Every time.Duration

	mu   sync.Mutex
	last time.Time
	held int
	used bool
}

// Allow reports whether a line may be logged at now, and how many lines it
// held back since the last one it allowed. A clock that stepped back before
// the last allowed line lets the next line through.
func (l *Limiter) Allow(now time.Time) (ok bool, held int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	every := l.Every
	if every <= 0 {
		every = Interval
	}
	if l.used && now.Sub(l.last) < every && !now.Before(l.last) {
		l.held++
		return false, 0
	}
	l.used, l.last, held, l.held = true, now, l.held, 0
	return true, held
}

// Reset forgets the last line, so that the next one goes through: for a
// condition that ended and began again.
func (l *Limiter) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.used, l.held = false, 0
}

// Log logs msg with args at level on log if Allow lets it through at the
// current time, with the count of lines held back since the last one as
// "suppressed" when there were any.
func (l *Limiter) Log(log *slog.Logger, level slog.Level, msg string, args ...any) {
	l.LogAt(time.Now(), log, level, msg, args...)
}

// LogAt is Log at a time the caller read from its own clock.
func (l *Limiter) LogAt(now time.Time, log *slog.Logger, level slog.Level, msg string, args ...any) {
	ok, held := l.Allow(now)
	if !ok {
		return
	}
	if held > 0 {
		args = append(args, "suppressed", held)
	}
	log.Log(context.Background(), level, msg, args...)
}
