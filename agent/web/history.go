package web

import (
	"sync"
	"time"
)

// The status page's plots show the last hour: one point per HistoryStep,
// kept in a fixed ring, so that the memory they take is bounded whatever
// the uptime.
const (
	HistoryStep   = 30 * time.Second
	HistoryWindow = time.Hour
	historyPoints = int(HistoryWindow / HistoryStep)
)

// Point is one look at the figures the plots show.
type Point struct {
	Unix    float64 // when, Unix seconds
	Waiting float64 // samples waiting to be sent, on disk and not yet
	Age     float64 // backlog age, seconds
	Sent    float64 // samples sent since the sender started: a counter
}

// History keeps the last hour of Points, at most one per HistoryStep: a
// look within the step of the previous point replaces it, so each point
// holds the last look of its step. The zero value is ready; its methods
// are safe for concurrent use.
type History struct {
	mu     sync.Mutex
	ring   [historyPoints]Point
	next   int // where the next new point goes
	n      int // points held
	lastAt int64
}

// Observe records p, taken at now.
func (h *History) Observe(now time.Time, p Point) {
	step := now.UnixNano() / int64(HistoryStep)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n > 0 && step == h.lastAt {
		h.ring[(h.next+historyPoints-1)%historyPoints] = p
		return
	}
	if h.n > 0 && step < h.lastAt {
		return // the clock went back: keep the points in time order
	}
	h.ring[h.next] = p
	h.next = (h.next + 1) % historyPoints
	h.n = min(h.n+1, historyPoints)
	h.lastAt = step
}

// Points returns the points of the hour before now, oldest first, in a
// slice of the caller's.
func (h *History) Points(now time.Time) []Point {
	from := float64(now.Add(-HistoryWindow).UnixMilli()) / 1000
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Point, 0, h.n)
	for i := range h.n {
		p := h.ring[(h.next-h.n+i+historyPoints)%historyPoints]
		if p.Unix >= from {
			out = append(out, p)
		}
	}
	return out
}
