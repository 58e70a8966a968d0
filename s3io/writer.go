package s3io

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ckptdev/ckpt/sink"
	"github.com/ckptdev/ckpt/store/s3store"
)

var (
	// ErrOutputExists: the output object exists before the job's first
	// run, or was created by another writer while the job ran. A job
	// creates its output and does not overwrite an object it did not
	// write, unless told to replace it (Output.Replace, --restart).
	ErrOutputExists = errors.New("output object already exists")
	// ErrUploadGone: the multipart upload that a checkpoint continues no
	// longer exists (aborted by hand, by a bucket lifecycle rule, or by a
	// restart of the job elsewhere). It matches sink.ErrOutputChanged, so
	// that the job is told to restart.
	ErrUploadGone = fmt.Errorf("%w: its multipart upload is gone", sink.ErrOutputChanged)
)

// MinPartSize is S3's smallest part of a multipart upload but the last.
const MinPartSize = s3store.MinPartSize

// Metadata of the output object: the id of the upload that wrote it, so
// that a finished job recognises its own object (and a Complete whose
// answer was lost, retried, recognises its own success).
const metaUpload = "ckpt-upload"

// Position is an S3 output's position in a checkpoint: the upload that
// writes it, the parts uploaded (each at least MinPartSize), and the tail,
// the bytes after the last part, kept in an object of its own until they
// fill a part or the job finishes. Length is all the bytes; CRC is the
// CRC32C (hex) of the parts' bytes, which with the tail's gives the whole
// output's, which the service checks when the upload completes. Write is
// a random id of the job's write, kept in the object's metadata, by
// which a finished job recognises its object.
type Position struct {
	Object  string `json:"object"`  // s3://bucket/key
	Address string `json:"address"` // the output's address as given, with its query: where ckpt delete finds the upload
	Upload  string `json:"upload"`
	Write   string `json:"write"`
	Parts   []Part `json:"parts,omitempty"`
	Tail    *Part  `json:"tail,omitempty"` // Key: the tail object; N: the part it will become
	Length  int64  `json:"length"`
	CRC     string `json:"crc32c"`
	Replace bool   `json:"replace,omitempty"` // the job replaces an existing object
}

// Part is an uploaded part: its number, size and CRC32C (as S3 gives
// it, base64), or for the tail, the object that holds its bytes.
type Part struct {
	N    int32  `json:"n"`
	Size int64  `json:"size"`
	CRC  string `json:"crc32c"`
	Key  string `json:"key,omitempty"`
}

// Writer is a job's output object, written as one multipart upload. Its
// Write, Buffered and Commit are those of sink.File: output is buffered,
// and whenever PartSize bytes are buffered they are uploaded as the next
// part, in the background (at most the store's concurrency parts in
// flight; a Write waits for a free slot).
//
// A checkpoint (Flush, then Sync) records the upload id, the parts and
// the tail, the bytes buffered since the last part: a tail of at least
// MinPartSize is cut as a part; a smaller one is written to a small
// object of its own beside the output (KEY.ckpt-tail/...), since a part
// under 5 MiB may only be an upload's last, and a part of an unfinished
// upload cannot be read back. Sync returns when the parts and the tail
// are stored. The tail objects of all but the last two checkpoints are
// removed as the job goes on (the last committed one is referenced by
// the checkpoint a resume would use), the rest when the job finishes.
//
// A resume (Output.Open with a position) finds the recorded parts in
// the upload (ListParts: each present with its size and checksum), and
// reads the tail back into the buffer: the next part written is the one
// after the recorded ones, so that parts uploaded after the checkpoint
// are replaced, and any beyond the job's last are left out when the
// upload completes. The object appears only in Complete, once the job's
// final checkpoint is committed: the tail is uploaded as the last part
// (which may be small), and CompleteMultipartUpload creates the object
// with If-None-Match: * (or replaces it, with Replace), checking the
// CRC32C of the whole output.
//
// Write and Flush are called from one goroutine; Sync may run
// concurrently with Write. A failed upload is final: every later call
// returns its error, and the job resumes from its last checkpoint.
type Writer struct {
	st     *s3store.Store
	key    string
	object string
	addr   string
	log    *slog.Logger

	partSize int64
	upload   string
	write    string
	replace  bool

	buf []byte
	crc uint32 // of the bytes in parts
	n   int64  // bytes in parts

	sem  chan struct{} // one token per part in flight
	free chan []byte   // buffers of parts uploaded, for reuse
	wg   sync.WaitGroup

	mu     sync.Mutex
	parts  []*partState // cut, in order
	err    error        // the first failed upload
	broken atomic.Bool  // err is set: read per record without the lock

	pending *pendingTail // the tail of the last Flush, for Sync
	tails   []string     // tail objects stored, oldest first
	done    bool         // completed
}

type partState struct {
	Part
	etag string
	done chan struct{} // closed when uploaded (or failed)
}

type pendingTail struct {
	part  Part
	data  []byte
	parts int // parts cut when it was taken: Sync waits for them
}

func newID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// tailPrefix is where the tail objects of output key live.
func tailPrefix(key string) string { return key + ".ckpt-tail/" }

// tailKey names the tail of upload that is to become part n.
func tailKey(key, upload string, t Part) string {
	h := sha256.Sum256([]byte(upload))
	return fmt.Sprintf("%s%s/%d-%d-%s", tailPrefix(key), hex.EncodeToString(h[:6]), t.N, t.Size, crcHexOf(t.CRC))
}

// crcHexOf renders a base64 CRC32C in hex, for object names.
func crcHexOf(b64 string) string {
	v, _ := base64.StdEncoding.DecodeString(b64)
	return hex.EncodeToString(v)
}

func (w *Writer) fail(op string, err error) error {
	return fmt.Errorf("s3io: %s %s: %w", op, w.object, err)
}

// Write buffers p, uploading a part whenever PartSize bytes are buffered.
func (w *Writer) Write(p []byte) (int, error) {
	if err := w.failed(); err != nil {
		return 0, err
	}
	w.buf = append(w.buf, p...)
	if int64(len(w.buf)) >= w.partSize {
		if err := w.cut(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// WriteString buffers s.
func (w *Writer) WriteString(s string) (int, error) {
	if err := w.failed(); err != nil {
		return 0, err
	}
	w.buf = append(w.buf, s...)
	if int64(len(w.buf)) >= w.partSize {
		if err := w.cut(); err != nil {
			return 0, err
		}
	}
	return len(s), nil
}

// Buffered returns the buffer to append to directly; Commit takes it back
// (as for sink.File).
func (w *Writer) Buffered() []byte { return w.buf }

// Commit takes back the slice that Buffered returned, extended by
// appends.
func (w *Writer) Commit(b []byte) error {
	w.buf = b
	if int64(len(w.buf)) >= w.partSize {
		return w.cut()
	}
	return w.failed()
}

func (w *Writer) failed() error {
	if !w.broken.Load() {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// cut uploads the buffer as the next part, in the background.
func (w *Writer) cut() error {
	if err := w.failed(); err != nil {
		return err
	}
	data := w.buf
	select {
	case w.buf = <-w.free:
	default:
		w.buf = make([]byte, 0, w.partSize+w.partSize/8)
	}
	off := w.n
	w.crc = crc32.Update(w.crc, castagnoli, data)
	w.n += int64(len(data))
	return w.startPart(data, off)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (w *Writer) startPart(data []byte, off int64) error {
	w.mu.Lock()
	num := int32(len(w.parts) + 1)
	w.mu.Unlock()
	if num > 10000 {
		return w.setErr(fmt.Errorf("s3io: %s: more than 10,000 parts: raise part_size", w.object))
	}
	p := &partState{Part: Part{N: num, Size: int64(len(data)), CRC: s3store.CRC32C(data)}, done: make(chan struct{})}
	w.mu.Lock()
	w.parts = append(w.parts, p)
	w.mu.Unlock()
	w.sem <- struct{}{}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer func() { <-w.sem }()
		defer close(p.done)
		etag, err := w.uploadPart(context.Background(), p.Part, data)
		w.mu.Lock()
		defer w.mu.Unlock()
		if err != nil {
			if w.err == nil {
				w.err = fmt.Errorf("%w (output from byte %d on is lost; resume from the last checkpoint)", err, off)
				w.broken.Store(true)
			}
			return
		}
		p.etag = etag
		// Only a buffer whose upload succeeded is reused: the transport
		// may still read the body of a failed request.
		select {
		case w.free <- data[:0]:
		default:
		}
	}()
	return nil
}

func (w *Writer) setErr(err error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
		w.broken.Store(true)
	}
	return w.err
}

// uploadPart uploads data as part p of the upload, with its CRC32C.
func (w *Writer) uploadPart(ctx context.Context, p Part, data []byte) (string, error) {
	var etag string
	err := w.st.Do(ctx, "UploadPart", w.object, func(ctx context.Context) error {
		out, err := w.st.Client().UploadPart(ctx, &s3.UploadPartInput{
			Bucket:         aws.String(w.st.Bucket()),
			Key:            aws.String(w.key),
			UploadId:       aws.String(w.upload),
			PartNumber:     aws.Int32(p.N),
			Body:           bytes.NewReader(data),
			ContentLength:  aws.Int64(int64(len(data))),
			ChecksumCRC32C: aws.String(p.CRC),
		}, s3store.UnsignedPayload)
		if err != nil {
			return err
		}
		etag = aws.ToString(out.ETag)
		return nil
	})
	if err != nil {
		if code, _ := s3store.ErrorCode(err); code == "NoSuchUpload" {
			return "", fmt.Errorf("%w: upload %s of %s: %w", ErrUploadGone, w.upload, w.object, err)
		}
		return "", fmt.Errorf("part %d: %w", p.N, err)
	}
	return etag, nil
}

// Flush returns the position covering everything written so far (a
// Position): a buffer of at least MinPartSize is cut as a part; a
// smaller one is the tail, which Sync stores.
func (w *Writer) Flush() (json.RawMessage, error) {
	if err := w.failed(); err != nil {
		return nil, err
	}
	if int64(len(w.buf)) >= MinPartSize {
		if err := w.cut(); err != nil {
			return nil, err
		}
	}
	pos := w.position()
	w.pending = nil
	if pos.Tail != nil {
		w.pending = &pendingTail{part: *pos.Tail, data: bytes.Clone(w.buf), parts: len(pos.Parts)}
	} else {
		w.pending = &pendingTail{parts: len(pos.Parts)}
	}
	return json.Marshal(pos)
}

// position is the writer's position now.
func (w *Writer) position() Position {
	pos := Position{Object: w.object, Address: w.addr, Upload: w.upload, Write: w.write, Length: w.n + int64(len(w.buf)),
		CRC: strconv.FormatUint(uint64(w.crc), 16), Replace: w.replace}
	w.mu.Lock()
	for _, p := range w.parts {
		pos.Parts = append(pos.Parts, p.Part)
	}
	w.mu.Unlock()
	if len(w.buf) > 0 {
		t := Part{N: int32(len(pos.Parts) + 1), Size: int64(len(w.buf)), CRC: s3store.CRC32C(w.buf)}
		t.Key = tailKey(w.key, w.upload, t)
		pos.Tail = &t
	}
	return pos
}

// Sync stores what the last Flush covered: it waits for the parts in
// flight and writes the tail object.
func (w *Writer) Sync(ctx context.Context) error {
	pt := w.pending
	if pt == nil {
		return w.failed()
	}
	w.mu.Lock()
	parts := w.parts[:pt.parts]
	w.mu.Unlock()
	for _, p := range parts {
		select {
		case <-p.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := w.failed(); err != nil {
		return err
	}
	if pt.data == nil {
		return nil
	}
	w.mu.Lock()
	stored := len(w.tails) > 0 && w.tails[len(w.tails)-1] == pt.part.Key
	w.mu.Unlock()
	if stored {
		return nil
	}
	err := w.st.Do(ctx, "PutObject", pt.part.Key, func(ctx context.Context) error {
		_, err := w.st.Client().PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(w.st.Bucket()), Key: aws.String(pt.part.Key),
			Body: bytes.NewReader(pt.data), ContentLength: aws.Int64(int64(len(pt.data))),
			ChecksumCRC32C: aws.String(pt.part.CRC),
		}, s3store.UnsignedPayload)
		return err
	})
	if err != nil {
		return w.fail("store the tail of", err)
	}
	w.mu.Lock()
	w.tails = append(w.tails, pt.part.Key)
	var old []string
	if len(w.tails) > 2 {
		// The checkpoint before this one is committed (checkpoints are
		// taken one at a time, and a failed one stops the job): tails
		// older than its are referenced by no checkpoint a resume uses.
		old = w.tails[:len(w.tails)-2]
		w.tails = append([]string(nil), w.tails[len(w.tails)-2:]...)
	}
	w.mu.Unlock()
	for _, k := range old {
		w.deleteObject(ctx, k)
	}
	return nil
}

func (w *Writer) deleteObject(ctx context.Context, key string) {
	err := w.st.Do(ctx, "DeleteObject", key, func(ctx context.Context) error {
		_, err := w.st.Client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(w.st.Bucket()), Key: aws.String(key)})
		return err
	})
	if err != nil {
		w.log.Warn("s3io: could not remove an old tail object", "key", key, "err", err)
	}
}

// wait waits for every part in flight.
func (w *Writer) wait() error {
	w.wg.Wait()
	return w.failed()
}

// Complete makes the output object appear, once the job's final
// checkpoint is committed: the tail is uploaded as the last part and the
// upload completed, created only if absent (unless the job replaces the
// object). The tail objects are removed.
func (w *Writer) Complete(ctx context.Context) error {
	if w.done {
		return nil
	}
	if err := w.wait(); err != nil {
		return err
	}
	pos := w.position()
	etags := make(map[int32]string, len(w.parts))
	w.mu.Lock()
	for _, p := range w.parts {
		etags[p.N] = p.etag
	}
	w.mu.Unlock()
	if err := complete(ctx, w.st, w.key, pos, etags, w.buf, w.log); err != nil {
		return err
	}
	w.done = true
	return nil
}

// Path returns the output's address, s3://bucket/key.
func (w *Writer) Path() string { return w.object }

// Close waits for the parts in flight and releases the connections. It
// completes nothing: an unfinished job's upload stays for the resume.
func (w *Writer) Close() error {
	if w.st == nil {
		return nil
	}
	w.wg.Wait()
	err := w.st.Close()
	w.st = nil
	return err
}
