package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"
)

// parseFlags parses the command line of one of ferry's commands into fs,
// whose name is the command as typed ("ferry", "ferry push"). With --help it
// prints usage and the flags to stdout; a bad flag or value, or other than
// nargs positional arguments, is one line on stderr naming the command.
// done reports that the command should exit with code.
func parseFlags(fs *pflag.FlagSet, args []string, usage string, nargs int, stdout, stderr io.Writer) (code int, done bool) {
	fs.SortFlags = false
	fs.SetOutput(io.Discard)
	prefix := "ferry: "
	if sub := strings.TrimPrefix(fs.Name(), "ferry "); sub != fs.Name() {
		prefix += sub + ": "
	}
	see := " (see " + fs.Name() + " --help)"
	err := fs.Parse(args)
	switch {
	case errors.Is(err, pflag.ErrHelp):
		fmt.Fprint(stdout, usage)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return 0, true
	case err != nil:
		fmt.Fprintf(stderr, "%s%v%s\n", prefix, err, see)
		return 2, true
	case fs.NArg() > nargs:
		fmt.Fprintf(stderr, "%sunexpected argument %q%s\n", prefix, fs.Arg(nargs), see)
		return 2, true
	case fs.NArg() < nargs:
		line, _, _ := strings.Cut(usage, "\n")
		fmt.Fprintf(stderr, "%susage: %s%s\n", prefix, strings.TrimPrefix(line, "Usage: "), see)
		return 2, true
	}
	return 0, false
}
