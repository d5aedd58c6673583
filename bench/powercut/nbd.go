package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
)

// The NBD protocol (the fixed newstyle handshake and simple replies), as
// far as qemu's client needs it to use a volatileDisk as its drive. The
// constants are from the protocol's specification.
const (
	nbdMagic         = 0x4e42444d41474943 // "NBDMAGIC"
	nbdOptMagic      = 0x49484156454f5054 // "IHAVEOPT"
	nbdOptReplyMagic = 0x3e889045565a9
	nbdRequestMagic  = 0x25609513
	nbdReplyMagic    = 0x67446698

	nbdFlagFixedNewstyle = 1 << 0
	nbdFlagNoZeroes      = 1 << 1

	nbdOptExportName = 1
	nbdOptAbort      = 2
	nbdOptGo         = 7

	nbdRepAck      = 1
	nbdRepInfo     = 3
	nbdRepErrUnsup = 1<<31 | 1

	nbdInfoExport = 0

	nbdFlagHasFlags  = 1 << 0
	nbdFlagSendFlush = 1 << 2
	nbdFlagSendFUA   = 1 << 3

	nbdCmdRead  = 0
	nbdCmdWrite = 1
	nbdCmdDisc  = 2
	nbdCmdFlush = 3

	nbdCmdFlagFUA = 1 << 0

	nbdEIO    = 5
	nbdEINVAL = 22
)

const nbdTransmissionFlags = nbdFlagHasFlags | nbdFlagSendFlush | nbdFlagSendFUA

// serveOneNBD accepts one client on ln and serves disk to it in the
// background; the channel gets serveNBD's result (or Accept's error).
func serveOneNBD(ln net.Listener, disk *volatileDisk) <-chan error {
	done := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		done <- serveNBD(conn, disk)
	}()
	return done
}

// serveNBD serves disk to one client on conn until it disconnects or the
// connection breaks (qemu was killed).
func serveNBD(conn net.Conn, disk *volatileDisk) error {
	defer conn.Close()
	r := bufio.NewReader(conn)
	w := bufio.NewWriter(conn)
	if err := nbdHandshake(r, w, disk.size); err != nil {
		return fmt.Errorf("nbd handshake: %w", err)
	}
	var hdr [28]byte
	buf := make([]byte, 0, 1<<20)
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return nil // the client went away
		}
		be := binary.BigEndian
		if be.Uint32(hdr[0:]) != nbdRequestMagic {
			return errors.New("nbd: bad request magic")
		}
		flags, typ := be.Uint16(hdr[4:]), be.Uint16(hdr[6:])
		cookie, off, n := be.Uint64(hdr[8:]), int64(be.Uint64(hdr[16:])), int64(be.Uint32(hdr[24:]))
		inRange := off >= 0 && off+n <= disk.size
		var errno uint32
		var data []byte
		switch typ {
		case nbdCmdRead:
			if !inRange {
				errno = nbdEINVAL
				break
			}
			data = append(buf[:0], make([]byte, n)...)
			if err := disk.ReadAt(data, off); err != nil {
				errno, data = nbdEIO, nil
			}
		case nbdCmdWrite:
			payload := append(buf[:0], make([]byte, n)...)
			if _, err := io.ReadFull(r, payload); err != nil {
				return nil
			}
			if !inRange {
				errno = nbdEINVAL
			} else if err := disk.WriteAt(payload, off, flags&nbdCmdFlagFUA != 0); err != nil {
				errno = nbdEIO
			}
		case nbdCmdFlush:
			if err := disk.Flush(); err != nil {
				errno = nbdEIO
			}
		case nbdCmdDisc:
			return nil
		default:
			errno = nbdEINVAL
		}
		var rep [16]byte
		be.PutUint32(rep[0:], nbdReplyMagic)
		be.PutUint32(rep[4:], errno)
		be.PutUint64(rep[8:], cookie)
		w.Write(rep[:])
		w.Write(data)
		if err := w.Flush(); err != nil {
			return nil
		}
	}
}

func nbdHandshake(r *bufio.Reader, w *bufio.Writer, size int64) error {
	be := binary.BigEndian
	var b [18]byte
	be.PutUint64(b[0:], nbdMagic)
	be.PutUint64(b[8:], nbdOptMagic)
	be.PutUint16(b[16:], nbdFlagFixedNewstyle|nbdFlagNoZeroes)
	w.Write(b[:])
	if err := w.Flush(); err != nil {
		return err
	}
	var clientFlags [4]byte
	if _, err := io.ReadFull(r, clientFlags[:]); err != nil {
		return err
	}
	noZeroes := be.Uint32(clientFlags[:])&nbdFlagNoZeroes != 0
	for {
		var opt [16]byte
		if _, err := io.ReadFull(r, opt[:]); err != nil {
			return err
		}
		if be.Uint64(opt[0:]) != nbdOptMagic {
			return errors.New("bad option magic")
		}
		code, n := be.Uint32(opt[8:]), be.Uint32(opt[12:])
		if n > 4096 {
			return errors.New("option too long")
		}
		if _, err := io.CopyN(io.Discard, r, int64(n)); err != nil {
			return err
		}
		switch code {
		case nbdOptExportName: // no reply header; transmission follows
			var x [10]byte
			be.PutUint64(x[0:], uint64(size))
			be.PutUint16(x[8:], nbdTransmissionFlags)
			w.Write(x[:])
			if !noZeroes {
				w.Write(make([]byte, 124))
			}
			return w.Flush()
		case nbdOptGo:
			var info [12]byte
			be.PutUint16(info[0:], nbdInfoExport)
			be.PutUint64(info[2:], uint64(size))
			be.PutUint16(info[10:], nbdTransmissionFlags)
			nbdOptReply(w, code, nbdRepInfo, info[:])
			nbdOptReply(w, code, nbdRepAck, nil)
			return w.Flush()
		case nbdOptAbort:
			nbdOptReply(w, code, nbdRepAck, nil)
			w.Flush()
			return errors.New("client aborted")
		default: // structured replies, meta contexts, TLS...: not offered
			nbdOptReply(w, code, nbdRepErrUnsup, nil)
			if err := w.Flush(); err != nil {
				return err
			}
		}
	}
}

func nbdOptReply(w *bufio.Writer, opt, typ uint32, data []byte) {
	var h [20]byte
	be := binary.BigEndian
	be.PutUint64(h[0:], nbdOptReplyMagic)
	be.PutUint32(h[8:], opt)
	be.PutUint32(h[12:], typ)
	be.PutUint32(h[16:], uint32(len(data)))
	w.Write(h[:])
	w.Write(data)
}
