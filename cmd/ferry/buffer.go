package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/pflag"

	"github.com/ferry-agent/ferry/buffer"
)

const statUsage = `Usage: ferry buffer stat [flags]

What the on-disk buffer holds: blocks, samples, series, oldest and newest
sample. Refuses while an agent has the buffer open.

Flags:
`

// runBuffer serves "ferry buffer stat|export" for people at a device's
// shell. Both refuse while an agent has the buffer open; stat opens it
// read-only, export (export.go) too unless told to mark what it wrote as sent.
func runBuffer(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "stat" && args[0] != "export") {
		fmt.Fprintln(stderr, "ferry: usage: ferry buffer stat|export [--storage.path DIR]")
		return 2
	}
	if args[0] == "export" {
		return runExport(args[1:], stdout, stderr)
	}
	fs := pflag.NewFlagSet("ferry buffer "+args[0], pflag.ContinueOnError)
	path := fs.String("storage.path", "./data", "Directory of the on-disk buffer.")
	if code, done := parseFlags(fs, args[1:], statUsage, 0, stdout, stderr); done {
		return code
	}
	b, err := buffer.Open(buffer.Options{Dir: *path, ReadOnly: true})
	if err != nil {
		fmt.Fprintf(stderr, "ferry: %v\n", err)
		return 1
	}
	defer b.Close()
	st := b.Stats()
	fmt.Fprintf(stdout, "file:            %s/%s (%d bytes)\n", *path, buffer.FileName, st.FileBytes)
	fmt.Fprintf(stdout, "blocks:          %d (first seq %d)\n", st.Blocks, st.FirstSeq)
	fmt.Fprintf(stdout, "samples:         %d\n", st.Samples)
	if st.HeadSamples > 0 {
		// A process that died left them; its next start commits them.
		fmt.Fprintf(stdout, "journaled:       %d samples not committed yet (the agent commits them at its next start)\n", st.HeadSamples)
	}
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
