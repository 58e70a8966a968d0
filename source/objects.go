package source

import (
	"io"
	"io/fs"
	"time"
)

// Objects is where a source's inputs are when they are not local files:
// objects of a bucket, named by the paths given to OpenCSV (through
// CSVOptions.Objects) or OpenLinesFrom. It keeps the heavy client of the
// service out of this package: package s3io implements it for S3.
//
// An object cannot change while it is read: its fingerprint names one
// version of it (an ETag), and Open reads that version or fails. So a
// position over objects is checked by the fingerprints alone.
type Objects interface {
	// Fingerprint describes the object name as it is now: its Path (name,
	// as messages should show it), Size and ETag. A missing object's
	// error matches fs.ErrNotExist.
	Fingerprint(name string) (Fingerprint, error)
	// Open reads the version of the object fp describes from byte off to
	// its end (fp.Size), failing if it was replaced.
	Open(fp Fingerprint, off int64) (io.ReadCloser, error)
}

// inputFile is an open input: a local file, or an object being read.
type inputFile interface {
	io.ReadCloser
	Stat() (fs.FileInfo, error)
}

// fingerprint fingerprints an input file or object.
func (rd *reader) fingerprint(path string) (Fingerprint, error) {
	if rd.objs != nil {
		return rd.objs.Fingerprint(path)
	}
	return fingerprint(path)
}

// objectFile is an object being read. Its Stat reports the fingerprinted
// size and time: the version read is the fingerprinted one, or the read
// fails.
type objectFile struct {
	io.ReadCloser
	fp Fingerprint
}

func (o *objectFile) Stat() (fs.FileInfo, error) { return objectInfo{o.fp}, nil }

type objectInfo struct{ fp Fingerprint }

func (i objectInfo) Name() string       { return i.fp.Path }
func (i objectInfo) Size() int64        { return i.fp.Size }
func (i objectInfo) Mode() fs.FileMode  { return 0o444 }
func (i objectInfo) ModTime() time.Time { return time.Unix(0, i.fp.ModTime) }
func (i objectInfo) IsDir() bool        { return false }
func (i objectInfo) Sys() any           { return nil }
