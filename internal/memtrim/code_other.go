//go:build !linux

package memtrim

import "errors"

// ReleaseCode is Linux's alone.
func ReleaseCode() (int, error) { return 0, errors.New("releasing code pages is for Linux only") }
