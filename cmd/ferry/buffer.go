package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/pflag"

	"github.com/ferry-agent/ferry/buffer"
)

// exportMemorySamples bounds the samples "ferry buffer export" holds at
// once (16 bytes each).
const exportMemorySamples = 1 << 20

// runBuffer serves "ferry buffer stat|export" for people at a device's
// shell. Both open the buffer read-only, and refuse while an agent has it.
func runBuffer(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "stat" && args[0] != "export") {
		fmt.Fprintln(stderr, "ferry: usage: ferry buffer stat|export [--storage.path DIR]")
		return 2
	}
	fs := pflag.NewFlagSet("ferry buffer "+args[0], pflag.ContinueOnError)
	path := fs.String("storage.path", "./data", "Directory of the on-disk buffer.")
	if code, done := parse(fs, args[1:], stdout, stderr); done {
		return code
	}
	b, err := buffer.Open(buffer.Options{Dir: *path, ReadOnly: true})
	if err != nil {
		fmt.Fprintf(stderr, "ferry: %v\n", err)
		return 1
	}
	defer b.Close()
	if args[0] == "export" {
		n, err := exportOpenMetrics(b, stdout, exportMemorySamples)
		if err != nil {
			fmt.Fprintf(stderr, "ferry: export: %v\n", err)
			return 1
		}
		if dropped := b.Stats().Dropped[buffer.ReasonCorrupt]; dropped > 0 {
			fmt.Fprintf(stderr, "ferry: %d samples in damaged blocks were skipped\n", dropped)
		}
		fmt.Fprintf(stderr, "ferry: exported %d samples\n", n)
		return 0
	}
	st := b.Stats()
	fmt.Fprintf(stdout, "file:            %s/%s (%d bytes)\n", *path, buffer.FileName, st.FileBytes)
	fmt.Fprintf(stdout, "blocks:          %d (first seq %d)\n", st.Blocks, st.FirstSeq)
	fmt.Fprintf(stdout, "samples:         %d\n", st.Samples)
	fmt.Fprintf(stdout, "series:          %d\n", st.Series)
	fmt.Fprintf(stdout, "oldest sample:   %s\n", formatMillis(st.OldestT))
	fmt.Fprintf(stdout, "newest sample:   %s\n", formatMillis(st.NewestT))
	return 0
}

func formatMillis(ms int64) string {
	if ms == 0 {
		return "-"
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}
