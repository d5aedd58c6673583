package main

import (
	"testing"
	"time"
)

func TestDeliveries(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	ms := func(s float64) int64 { return at(s).UnixMilli() }
	d := deliveries{
		// Scrapes every 5 s; agents stamp before the harness serves, by up
		// to seconds on a busy machine.
		scrapes:   []time.Time{at(0), at(5), at(10), at(15)},
		perScrape: 10,
		interval:  5 * time.Second,
		arrivals: []arrival{
			{at(1), ms(-0.01), 10}, // scrape 0, whole
			{at(7), ms(4.99), 6},   // scrape 1, in two requests
			{at(12), ms(4.99), 4},  //
			{at(13), ms(4.99), 10}, // scrape 1 again (resent after a crash): counts once
			{at(20), ms(7), 3},     // scrape 2, part, stamped 3 s early
			{at(21), ms(30), 10},   // no scrape near it
			{at(21), ms(-6), 10},   // more than an interval before scrape 0
			{at(22), ms(15.2), 2},  // scrape 3, part, stamped after it was served
		},
	}
	for _, tc := range []struct {
		from, to, by    float64
		served, arrived int64
	}{
		{0, 20, 100, 40, 25},
		{0, 5, 0.5, 10, 0},
		{0, 5, 1, 10, 10},
		{5, 10, 8, 10, 6},
		{5, 10, 12, 10, 10},
		{20, 30, 100, 0, 0},
	} {
		s, a := d.share(at(tc.from), at(tc.to), at(tc.by))
		if s != tc.served || a != tc.arrived {
			t.Errorf("share [%v, %v) by %v: %d of %d, want %d of %d", tc.from, tc.to, tc.by, a, s, tc.arrived, tc.served)
		}
	}
	if c, ok := d.completeAt(at(0), at(10)); !ok || !c.Equal(at(12)) {
		t.Errorf("completeAt [0, 10): %v %v, want %v", c, ok, at(12))
	}
	if _, ok := d.completeAt(at(0), at(15)); ok {
		t.Errorf("completeAt [0, 15): complete, scrape 2 is not")
	}
	if c, ok := d.completeAt(at(16), at(20)); !ok || !c.Equal(at(16)) {
		t.Errorf("completeAt of no scrape: %v %v, want its start", c, ok)
	}

	// Freshness with a lag of 3 s, looked at every 3 s: at 6, of [0, 3)
	// 10 of 10; at 9, of [0, 6) 16 of 20; at 12, of [0, 9) 20 of 20; at 15,
	// of [0, 12) 20 of 30.
	f := d.freshness(at(0), at(15), 3*time.Second, 3*time.Second)
	if f.moments != 4 || f.pooled != 100*66.0/80 || f.worst != 100*20.0/30 {
		t.Errorf("freshness %+v, want 4 moments, pooled %v, worst %v", f, 100*66.0/80, 100*20.0/30)
	}
}
