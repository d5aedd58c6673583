//go:build slicelabels

package exposition

// str copies: slicelabels' label sets keep the strings they are built from.
func str(b []byte) string { return string(b) }
