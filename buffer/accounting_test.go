package buffer

// Defects the model test (model_test.go) found, each reduced to a small
// deterministic test.

import (
	"fmt"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// Append documents out_of_order for a sample "not newer than the last
// sample appended to its series since Open, committed or not". When many
// series churn (more than 1024 label sets with nothing left in the
// buffer), collectSeries forgets them together with their seriesState; a
// series that comes back then gets a new ref and a fresh lastT, and a
// sample older than one already delivered is accepted and sent after it.
func TestForgottenSeriesStillRefusesOlderSamples(t *testing.T) {
	b := openTest(t, t.TempDir(), 4<<20)
	defer b.Close()
	a := labels.FromStrings("__name__", "m", "id", "a")
	b.Append(a, 10_000, 1)
	deliverLive(b)
	forgetByChurn(t, b, 20_000)
	b.Append(a, 5_000, 2) // the clock stepped back: older than the 10_000 delivered
	if got := b.Stats().Dropped[ReasonOutOfOrder]; got != 1 {
		blk, _ := b.TakeLive(1<<20, false)
		b.LiveFailed(Block{})
		t.Fatalf("out_of_order = %d, want 1: the sample at 5000 was taken (%d samples in the head: %v) and goes to the receiver after 10000", got, blk.Samples(), blk.Series)
	}
}

// Blocks the sender delivered and has not acknowledged yet (it acks in
// batches: 50k samples or 10 s) are evicted when a commit needs room, and
// their samples counted as dropped (full) although the receiver has them:
// the drop counters overstate the loss, a sample is both delivered and
// dropped. Read's documentation mentions this for a block evicted while
// Read returns it; with batched acks it is the common case when a backlog
// drains at the cap.
func TestDeliveredBlocksEvictedBeforeTheirAckAreNoLoss(t *testing.T) {
	b := openTest(t, t.TempDir(), 256<<10)
	defer b.Close()
	ts := int64(1_000_000)
	commitRound := func() {
		for i := range 200 {
			b.Append(labels.FromStrings("__name__", "m", "i", fmt.Sprint(i)), ts, float64(ts))
		}
		ts += 15_000
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	commitRound()
	blocks, err := b.Read(0, 1<<20) // delivered; the ack waits for the batch
	if err != nil || len(blocks) == 0 {
		t.Fatal(err, len(blocks))
	}
	b.Delivered(blocks[len(blocks)-1].Seq) // as the sender says at once
	delivered := 0
	for _, blk := range blocks {
		delivered += blk.Samples()
	}
	for b.Stats().Dropped[ReasonFull] == 0 {
		commitRound()
	}
	if err := b.Ack(blocks[len(blocks)-1].Seq); err != nil {
		t.Fatal(err)
	}
	// Conservation: appended = delivered + kept + dropped.
	st := b.Stats()
	appended := int((ts - 1_000_000) / 15_000 * 200)
	if want := appended - delivered - st.Samples; int(st.Dropped[ReasonFull]) != want {
		t.Fatalf("appended %d, delivered %d, kept %d: %d samples lost, but %d counted full (the %d delivered, evicted before their ack, counted too)", appended, delivered, st.Samples, want, st.Dropped[ReasonFull], delivered)
	}
}

// A clock that stepped back across a restart: a sample older than the
// newest one committed for its series is refused after the reopen too,
// counted out_of_order, instead of reaching the receiver after newer ones.
func TestOutOfOrderAcrossARestart(t *testing.T) {
	dir := t.TempDir()
	b := openTest(t, dir, 4<<20)
	appendRound(b, 10, 100_000)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openTest(t, dir, 4<<20)
	defer b.Close()
	appendRound(b, 10, 90_000) // the clock stepped back while ferry was down
	appendRound(b, 10, 110_000)
	if st := b.Stats(); st.Dropped[ReasonOutOfOrder] != 10 || st.HeadSamples != 10 {
		t.Fatalf("out_of_order %d, head %d; want the 10 older samples refused, the 10 newer kept", st.Dropped[ReasonOutOfOrder], st.HeadSamples)
	}
}

// deliverLive takes what the head holds, as a sender that keeps up does,
// and returns its series.
func deliverLive(b *Buffer) (sent []Series) {
	for {
		blk, ok := b.TakeLive(1<<20, false)
		if !ok {
			return sent
		}
		sent = append(sent, blk.Series...)
		b.LiveDone()
	}
}

// forgetByChurn makes b forget the series that nothing holds: more than
// 1024 label sets come, at ts, and go to the receiver, and a commit's
// collectSeries forgets them and the others with nothing left.
func forgetByChurn(t *testing.T, b *Buffer, ts int64) {
	t.Helper()
	for i := range 1100 { // a target's label sets churn
		b.Append(labels.FromStrings("__name__", "m", "id", fmt.Sprint("c", i)), ts, 1)
	}
	deliverLive(b)
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
}
