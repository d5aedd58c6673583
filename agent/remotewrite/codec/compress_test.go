package codec

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/golang/snappy"
)

// TestCompressorIsSnappysBlockFormat: input given to a compressor in
// random pieces (a byte, a series, a piece larger than a block, at and
// across the 64 KiB boundaries, ending in a tail too short for snappy to
// compress) must come out as the bytes snappy.Encode makes of the whole,
// and decode to it, with the compressor's memory reused from one body to
// the next.
func TestCompressorIsSnappysBlockFormat(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 5))
	var z compressor
	for i := range 200 {
		var whole []byte
		z.reset()
		size := rng.IntN(4 * snappyBlock)
		switch i % 4 {
		case 0:
			size = rng.IntN(3) * snappyBlock // whole blocks, or nothing
		case 1:
			size = snappyBlock*(1+rng.IntN(3)) + rng.IntN(17) // a tail snappy leaves as a literal
		}
		for len(whole) < size {
			n := min(size-len(whole), []int{1, 200, 5000, snappyBlock, 3 * snappyBlock / 2}[rng.IntN(5)])
			piece := make([]byte, n)
			for k := range piece {
				piece[k] = "ferry{job=\"x\"} 1\n"[rng.IntN(17)] // compressible, as requests are
			}
			if rng.IntN(8) == 0 {
				for k := range piece {
					piece[k] = byte(rng.Uint32()) // and some not
				}
			}
			whole = append(whole, piece...)
			z.window = append(z.window, piece...)
			if len(z.window) >= snappyBlock && rng.IntN(2) == 0 {
				z.compress(false)
			}
		}
		got := z.finish()
		if want := snappy.Encode(nil, whole); !bytes.Equal(got, want) {
			t.Fatalf("seed %d, body %d: %d input bytes: %d bytes, not the %d of snappy.Encode", seed, i, len(whole), len(got), len(want))
		}
		back, err := snappy.Decode(nil, got)
		if err != nil || !bytes.Equal(back, whole) {
			t.Fatalf("seed %d, body %d: does not decode to its input: %v", seed, i, err)
		}
	}
}
