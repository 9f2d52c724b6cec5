// Package spool holds message bodies in flight between the IMAP FETCH that
// reads them and the SMTP sessions that send them: a bounded buffer pool,
// after maddy's framework/buffer (MemoryBuffer, FileBuffer). A body of up
// to the pool's memory limit stays in memory, in chunks reused across
// bodies; a bigger one goes whole to a temporary file (mode 0600, unlinked
// as soon as it is created where the system allows it), so that memory
// stays flat whatever the message size and however many bodies are in
// flight. The source is read to its end at its own speed: a slow reader of
// the buffer never holds it up.
//
// It never interprets the octets, never keeps a body past Close, and never
// leaves a temporary file behind, on success or failure.
package spool

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// DefaultMemLimit is the memory limit of a body that New callers use
// unless told otherwise: most mail is far smaller, attachments are not.
const DefaultMemLimit = 256 << 10

// chunkSize is the unit of memory a buffer holds: a small body takes one
// chunk, not a whole memory limit.
const chunkSize = 32 << 10

// Pool makes Buffers and keeps the memory chunks they give back.
type Pool struct {
	memLimit int64
	dir      string
	chunks   sync.Pool // *[]byte of capacity chunkSize
}

// New returns a pool whose buffers keep up to memLimit octets in memory
// and spill to a temporary file in dir above that; dir "" is
// os.TempDir(). A negative memLimit counts as 0 (every non-empty body
// goes to a file).
func New(memLimit int64, dir string) *Pool {
	return &Pool{
		memLimit: max(memLimit, 0),
		dir:      dir,
		chunks: sync.Pool{New: func() any {
			c := make([]byte, 0, chunkSize)
			return &c
		}},
	}
}

func (p *Pool) chunk() *[]byte {
	c := p.chunks.Get().(*[]byte)
	*c = (*c)[:0]
	return c
}

// Buffer is one body, in memory or in a temporary file. Its methods are
// not for concurrent use with Close.
type Buffer struct {
	pool   *Pool
	size   int64
	chunks []*[]byte // in memory, when file is nil
	file   *os.File  // spilled
	name   string    // the file's name while it is still linked; "" once unlinked
}

// Fill reads r to its end into a new Buffer. An error reading r is
// returned wrapped ("spool: read source: ..."); trouble with the temporary
// file (disk full) is its own error. On error nothing is kept: memory is
// given back and the file removed.
func (p *Pool) Fill(r io.Reader) (*Buffer, error) {
	b := &Buffer{pool: p}
	eof, err := b.fillMemory(r)
	if err == nil && !eof {
		err = b.spill(r)
	}
	if err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// fillMemory reads r into chunks until its end (eof) or the memory limit.
func (b *Buffer) fillMemory(r io.Reader) (eof bool, err error) {
	limit := b.pool.memLimit
	for b.size < limit {
		if n := len(b.chunks); n == 0 || len(*b.chunks[n-1]) == chunkSize {
			b.chunks = append(b.chunks, b.pool.chunk())
		}
		c := b.chunks[len(b.chunks)-1]
		room := min(int64(chunkSize-len(*c)), limit-b.size)
		n, err := r.Read((*c)[len(*c) : len(*c)+int(room)])
		*c = (*c)[:len(*c)+n]
		b.size += int64(n)
		switch {
		case err == io.EOF:
			return true, nil
		case err != nil:
			return false, fmt.Errorf("spool: read source: %w", err)
		}
	}
	return false, nil
}

// spill reads the rest of r past the memory limit; the first octet read
// moves the buffer into a temporary file.
func (b *Buffer) spill(r io.Reader) error {
	buf := b.pool.chunk()
	defer b.pool.chunks.Put(buf)
	for {
		n, rerr := r.Read((*buf)[:chunkSize])
		if n > 0 {
			if err := b.write((*buf)[:n]); err != nil {
				return err
			}
		}
		switch {
		case rerr == io.EOF:
			return nil
		case rerr != nil:
			return fmt.Errorf("spool: read source: %w", rerr)
		}
	}
}

// write appends p to the file, creating it from the chunks at the first
// call.
func (b *Buffer) write(p []byte) error {
	if b.file == nil {
		if err := b.create(); err != nil {
			return err
		}
	}
	if _, err := b.file.Write(p); err != nil {
		return fmt.Errorf("spool: write temporary file: %w", err)
	}
	b.size += int64(len(p))
	return nil
}

// create makes the temporary file (0600) and moves the chunks into it.
func (b *Buffer) create() error {
	f, err := os.CreateTemp(b.pool.dir, "mailtriage-spool-*")
	if err != nil {
		return fmt.Errorf("spool: create temporary file: %w", err)
	}
	b.file, b.name = f, f.Name()
	if os.Remove(b.name) == nil {
		b.name = "" // unlinked: gone with the last descriptor, even after a crash
	}
	for _, c := range b.chunks {
		if _, err := f.Write(*c); err != nil {
			return fmt.Errorf("spool: write temporary file: %w", err)
		}
	}
	b.release()
	return nil
}

// release gives the chunks back to the pool.
func (b *Buffer) release() {
	for _, c := range b.chunks {
		b.pool.chunks.Put(c)
	}
	b.chunks = nil
}

// Size is the body's length in octets.
func (b *Buffer) Size() int64 { return b.size }

// Reader returns a new reader of the body from its first octet.
func (b *Buffer) Reader() io.Reader {
	if b.file != nil {
		return io.NewSectionReader(b.file, 0, b.size)
	}
	return &chunkReader{chunks: b.chunks}
}

// Close gives the memory back and closes and removes the file. It may be
// called again; no Reader may be in use.
func (b *Buffer) Close() error {
	b.release()
	var err error
	if b.file != nil {
		err = b.file.Close()
		b.file = nil
	}
	if b.name != "" {
		err = errors.Join(err, os.Remove(b.name))
		b.name = ""
	}
	if err != nil {
		return fmt.Errorf("spool: close temporary file: %w", err)
	}
	return nil
}

// chunkReader reads a memory buffer's chunks in turn.
type chunkReader struct {
	chunks []*[]byte
	off    int // in chunks[0]
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.chunks) > 0 && r.off == len(*r.chunks[0]) {
		r.chunks, r.off = r.chunks[1:], 0
	}
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, (*r.chunks[0])[r.off:])
	r.off += n
	return n, nil
}
