package source

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// frameReader passes on one zstd frame of br (RFC 8878), then io.EOF, so
// that the decoder's end of stream is the frame's end. It reads the
// frame's headers to know its length, and the data unchanged; the
// decoder checks the data. A skippable frame is passed on whole, as a
// frame of no text.
type frameReader struct {
	br       *bufio.Reader
	at       func() int64 // the offset in the file of br's next byte
	left     int64        // bytes of the current part still to pass on
	state    int
	checksum bool
	// err is the error Read returned, other than io.EOF: the decoder may
	// report a reader's error at a frame's start as the stream's end.
	err error
}

const (
	frameStart = iota
	frameBlock
	frameChecksum
	frameDone
)

func (f *frameReader) reset() { f.left, f.state, f.checksum, f.err = 0, frameStart, false, nil }

// done reports whether the whole frame was passed on, or else why not.
func (f *frameReader) done() error {
	if f.err != nil {
		return f.err
	}
	if f.state != frameDone || f.left > 0 {
		return fmt.Errorf("%w: the decoder stopped before the frame's end, at byte %d", errFrame, f.at())
	}
	return nil
}

func (f *frameReader) Read(p []byte) (int, error) {
	n, err := f.read(p)
	if err != nil && err != io.EOF {
		f.err = err
	}
	return n, err
}

var errFrame = errors.New("zstd: not a frame")

func (f *frameReader) read(p []byte) (int, error) {
	for f.left == 0 {
		switch f.state {
		case frameStart:
			if err := f.header(); err != nil {
				return 0, err
			}
		case frameBlock:
			h, err := f.br.Peek(3)
			if err != nil {
				return 0, unexpected(err)
			}
			v := uint32(h[0]) | uint32(h[1])<<8 | uint32(h[2])<<16
			size := int64(v >> 3)
			switch (v >> 1) & 3 {
			case 1: // RLE: one byte, repeated size times
				size = 1
			case 3:
				return 0, fmt.Errorf("%w: a block of the reserved type at byte %d", errFrame, f.at())
			}
			f.left = 3 + size
			if v&1 != 0 { // the last block
				f.state = frameDone
				if f.checksum {
					f.state = frameChecksum
				}
			}
		case frameChecksum:
			f.left, f.state = 4, frameDone
		case frameDone:
			return 0, io.EOF
		}
	}
	n, err := f.br.Read(p[:min(int64(len(p)), f.left)])
	f.left -= int64(n)
	if err == io.EOF && f.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// header reads a frame's header, and sets the length of it to pass on.
func (f *frameReader) header() error {
	h, err := f.br.Peek(5)
	if len(h) < 4 {
		if err == io.EOF && len(h) == 0 {
			return io.EOF
		}
		return unexpected(err)
	}
	magic := binary.LittleEndian.Uint32(h)
	if magic&0xFFFFFFF0 == 0x184D2A50 { // skippable
		h, err := f.br.Peek(8)
		if err != nil {
			return unexpected(err)
		}
		f.left, f.state = 8+int64(binary.LittleEndian.Uint32(h[4:])), frameDone
		return nil
	}
	if magic != 0xFD2FB528 {
		return fmt.Errorf("%w at byte %d (it starts %08x)", errFrame, f.at(), magic)
	}
	if len(h) < 5 {
		return unexpected(err)
	}
	d := h[4]
	size := int64(5)
	single := d&0x20 != 0
	if !single {
		size++ // window descriptor
	}
	size += []int64{0, 1, 2, 4}[d&3] // dictionary ID
	switch d >> 6 {                  // frame content size
	case 0:
		if single {
			size++
		}
	case 1:
		size += 2
	case 2:
		size += 4
	case 3:
		size += 8
	}
	f.left, f.state, f.checksum = size, frameBlock, d&4 != 0
	return nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
