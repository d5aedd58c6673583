//go:build !slicelabels

package exposition

import "unsafe"

// str gives Labels' builder a name or value without copying it: ferry's
// label sets (Prometheus' default stringlabels, as dedupelabels) copy what
// they are built from when the builder's Labels is called, and b does not
// change before that.
func str(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
