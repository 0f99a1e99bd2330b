package main

// FerretDB 1.x runs `update` and `findAndModify` as "query, change in memory, write back"
// without a transaction (upstream issue FerretDB#3040), so two concurrent `$inc`s on one
// document lose one of the increments and two workers can claim the same job with
// findOneAndUpdate. MongoDB makes every single-document write atomic.
//
// writeSerializer restores that guarantee for development and tests: clients talk to it,
// it forwards every message unchanged to FerretDB over a Unix socket, and it holds one
// process-wide mutex while a write command (insert, update, delete, findAndModify and
// DDL) is executed. Reads are not serialized.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
)

const (
	opCompressed = 2012
	opMsg        = 2013

	msgFlagMoreToCome = 1 << 1

	// MongoDB's maxMessageSizeBytes is 48 MB; anything larger is a protocol error.
	maxMessageSize = 64 << 20
)

// writeCommands are the commands executed under the write mutex (lower case).
var writeCommands = map[string]bool{
	"insert":           true,
	"update":           true,
	"delete":           true,
	"findandmodify":    true,
	"create":           true,
	"createindexes":    true,
	"drop":             true,
	"dropdatabase":     true,
	"dropindexes":      true,
	"renamecollection": true,
	"collmod":          true,
}

type writeSerializer struct {
	backend string // Unix socket path of FerretDB
	logger  *slog.Logger

	writeMu sync.Mutex

	connsMu sync.Mutex
	conns   map[net.Conn]struct{}
	closing bool // set on shutdown: new connections are closed at once
	wg      sync.WaitGroup
}

func newWriteSerializer(backend string, logger *slog.Logger) *writeSerializer {
	return &writeSerializer{
		backend: backend,
		logger:  logger,
		conns:   make(map[net.Conn]struct{}),
	}
}

// serve accepts client connections until ctx is canceled, then closes all of them.
func (s *writeSerializer) serve(ctx context.Context, ln net.Listener) {
	go func() {
		<-ctx.Done()
		ln.Close()
		s.connsMu.Lock()
		s.closing = true
		for c := range s.conns {
			c.Close()
		}
		s.connsMu.Unlock()
	}()

	for {
		client, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				break
			}

			// e.g. too many open files: wait and retry
			s.logger.Error("accept failed", "error", err)
			time.Sleep(100 * time.Millisecond)

			continue
		}

		s.wg.Add(1)

		go func() {
			defer s.wg.Done()
			s.handle(client)
		}()
	}

	s.wg.Wait()
}

func (s *writeSerializer) track(c net.Conn, add bool) {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()

	switch {
	case add && s.closing:
		c.Close()
	case add:
		s.conns[c] = struct{}{}
	default:
		delete(s.conns, c)
	}
}

func (s *writeSerializer) handle(client net.Conn) {
	s.track(client, true)
	defer s.track(client, false)
	defer client.Close()

	backend, err := net.Dial("unix", s.backend)
	if err != nil {
		s.logger.Error("cannot connect to FerretDB", "error", err)
		return
	}

	s.track(backend, true)
	defer s.track(backend, false)
	defer backend.Close()

	err = s.relay(client, backend)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		s.logger.Debug("connection closed", "client", client.RemoteAddr().String(), "error", err)
	}
}

// relay forwards requests and their responses until either side closes.
func (s *writeSerializer) relay(client, backend net.Conn) error {
	for {
		req, err := readMessage(client)
		if err != nil {
			return err
		}

		op := opCode(req)
		write := op == opCompressed || (op == opMsg && writeCommands[strings.ToLower(msgCommand(req))])

		if write {
			s.writeMu.Lock()
		}

		err = s.roundTrip(client, backend, req, write)

		if err != nil {
			return err
		}
	}
}

// roundTrip sends one request and relays its responses; it unlocks writeMu if locked.
func (s *writeSerializer) roundTrip(client, backend net.Conn, req []byte, locked bool) error {
	unlock := func() {
		if locked {
			locked = false
			s.writeMu.Unlock()
		}
	}
	defer unlock()

	if _, err := backend.Write(req); err != nil {
		return err
	}

	// A request flagged moreToCome (unacknowledged write) gets no response.
	if opCode(req) == opMsg && msgFlags(req)&msgFlagMoreToCome != 0 {
		return nil
	}

	for {
		resp, err := readMessage(backend)
		if err != nil {
			return err
		}

		// Exhaust-style responses (moreToCome) are followed by more responses.
		last := opCode(resp) != opMsg || msgFlags(resp)&msgFlagMoreToCome == 0
		if last {
			unlock()
		}

		if _, err = client.Write(resp); err != nil {
			return err
		}

		if last {
			return nil
		}
	}
}

// readMessage reads one wire protocol message (header included).
func readMessage(r io.Reader) ([]byte, error) {
	var header [16]byte
	if _, err := io.ReadFull(r, header[:]); err != nil {
		return nil, err
	}

	size := int(int32(binary.LittleEndian.Uint32(header[:4])))
	if size < len(header) || size > maxMessageSize {
		return nil, fmt.Errorf("invalid message length %d", size)
	}

	msg := make([]byte, size)
	copy(msg, header[:])

	if _, err := io.ReadFull(r, msg[len(header):]); err != nil {
		return nil, err
	}

	return msg, nil
}

func opCode(msg []byte) int32 {
	return int32(binary.LittleEndian.Uint32(msg[12:16]))
}

func msgFlags(msg []byte) uint32 {
	if len(msg) < 20 {
		return 0
	}

	return binary.LittleEndian.Uint32(msg[16:20])
}

// msgCommand returns the command name of an OP_MSG: the first key of its body section.
func msgCommand(msg []byte) string {
	if len(msg) < 21 {
		return ""
	}

	p := msg[20:]
	for len(p) > 0 {
		kind := p[0]
		p = p[1:]

		if len(p) < 4 {
			return ""
		}

		size := int(int32(binary.LittleEndian.Uint32(p[:4])))
		if size < 5 || size > len(p) {
			return ""
		}

		if kind == 0 {
			// BSON document: int32 size, then elements: type byte, cstring key, value.
			doc := p[4:size]
			if len(doc) < 2 || doc[0] == 0 {
				return ""
			}

			if end := bytes.IndexByte(doc[1:], 0); end >= 0 {
				return string(doc[1 : 1+end])
			}

			return ""
		}

		p = p[size:] // kind 1: document sequence, size includes itself
	}

	return ""
}
