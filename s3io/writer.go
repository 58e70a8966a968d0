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
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

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

// complete finishes the upload of pos: the tail (its bytes) as the last
// part, then CompleteMultipartUpload with the parts' ETags (those etags
// lacks are listed), the whole output's CRC32C, and If-None-Match: *
// unless pos.Replace. An answer lost and retried is recognised by the
// object's upload id.
func complete(ctx context.Context, st *s3store.Store, key string, pos Position, etags map[int32]string, tail []byte, log *slog.Logger) error {
	object := pos.Object
	bucket := st.Bucket()
	parts := pos.Parts
	if pos.Tail != nil {
		if int64(len(tail)) != pos.Tail.Size || s3store.CRC32C(tail) != pos.Tail.CRC {
			return fmt.Errorf("s3io: complete %s: the tail to upload is not the recorded one", object)
		}
		w := &Writer{st: st, key: key, object: object, upload: pos.Upload}
		etag, err := w.uploadPart(ctx, *pos.Tail, tail)
		if err != nil {
			return fmt.Errorf("s3io: complete %s: the last part: %w", object, err)
		}
		etags[pos.Tail.N] = etag
		parts = append(parts[:len(parts):len(parts)], Part{N: pos.Tail.N, Size: pos.Tail.Size, CRC: pos.Tail.CRC})
	}
	if missing := slicesContainsMissing(parts, etags); missing {
		listed, err := listParts(ctx, st, key, pos)
		if err != nil {
			return err
		}
		for _, p := range parts {
			if etags[p.N] == "" {
				etags[p.N] = listed[p.N].etag
			}
		}
	}
	partsCRC, err := strconv.ParseUint(pos.CRC, 16, 32)
	if err != nil {
		return fmt.Errorf("s3io: complete %s: bad CRC %q in the position", object, pos.CRC)
	}
	crc := crc32.Update(uint32(partsCRC), castagnoli, tail)
	var sum [4]byte
	sum[0], sum[1], sum[2], sum[3] = byte(crc>>24), byte(crc>>16), byte(crc>>8), byte(crc)
	fullCRC := base64.StdEncoding.EncodeToString(sum[:])
	if len(parts) == 0 {
		// An empty output: S3 completes no upload without a part, so
		// the object is one empty PUT and the upload is aborted.
		err := st.Do(ctx, "PutObject", object, func(ctx context.Context) error {
			in := &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(nil),
				ContentLength: aws.Int64(0), Metadata: map[string]string{metaUpload: pos.Write}}
			if !pos.Replace {
				in.IfNoneMatch = aws.String("*")
			}
			_, err := st.Client().PutObject(ctx, in)
			return err
		})
		if err != nil {
			if own, _ := ownObject(ctx, st, key, pos); own {
				err = nil
			} else if _, status := s3store.ErrorCode(err); status == http.StatusPreconditionFailed {
				return fmt.Errorf("%w: %s was created by another writer while the job ran", ErrOutputExists, object)
			}
		}
		if err != nil {
			return err
		}
		st.Abort(ctx, key, pos.Upload)
		removeTails(ctx, st, key, log)
		return nil
	}
	done := make([]types.CompletedPart, len(parts))
	for i, p := range parts {
		done[i] = types.CompletedPart{PartNumber: aws.Int32(p.N), ETag: aws.String(etags[p.N]), ChecksumCRC32C: aws.String(p.CRC)}
	}
	err = st.Do(ctx, "CompleteMultipartUpload", object, func(ctx context.Context) error {
		in := &s3.CompleteMultipartUploadInput{
			Bucket: aws.String(bucket), Key: aws.String(key), UploadId: aws.String(pos.Upload),
			ChecksumCRC32C: aws.String(fullCRC), ChecksumType: types.ChecksumTypeFullObject,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: done},
		}
		if !pos.Replace {
			in.IfNoneMatch = aws.String("*")
		}
		_, err := st.Client().CompleteMultipartUpload(ctx, in)
		return err
	})
	if err != nil {
		// An attempt that landed with its answer lost leaves the retry
		// refused (the object exists, the upload is gone): the object's
		// upload id tells whether it is ours.
		own, herr := ownObject(ctx, st, key, pos)
		code, status := s3store.ErrorCode(err)
		switch {
		case own:
			err = nil
		case herr == nil && status == http.StatusPreconditionFailed:
			return fmt.Errorf("%w: %s was created by another writer while the job ran; the job's output stays in its upload until the job is restarted or deleted", ErrOutputExists, object)
		case code == "NoSuchUpload":
			return fmt.Errorf("%w: upload %s of %s: %w", ErrUploadGone, pos.Upload, object, err)
		}
		if err != nil {
			return err
		}
	}
	removeTails(ctx, st, key, log)
	return nil
}

func slicesContainsMissing(parts []Part, etags map[int32]string) bool {
	for _, p := range parts {
		if etags[p.N] == "" {
			return true
		}
	}
	return false
}

// ownObject reports whether the object at key exists and was written by
// the upload of pos.
func ownObject(ctx context.Context, st *s3store.Store, key string, pos Position) (bool, error) {
	head, err := st.HeadObject(context.WithoutCancel(ctx), key)
	if err != nil {
		return false, err
	}
	return head.Metadata[metaUpload] == pos.Write && aws.ToInt64(head.ContentLength) == pos.Length, nil
}

// listed is a part as ListParts gives it.
type listed struct {
	etag string
	size int64
	crc  string
}

// listParts lists the parts of pos's upload, and checks that the
// recorded ones are there as recorded.
func listParts(ctx context.Context, st *s3store.Store, key string, pos Position) (map[int32]listed, error) {
	got := make(map[int32]listed)
	var marker *string
	for {
		var out *s3.ListPartsOutput
		err := st.Do(ctx, "ListParts", pos.Object, func(ctx context.Context) error {
			var err error
			out, err = st.Client().ListParts(ctx, &s3.ListPartsInput{
				Bucket: aws.String(st.Bucket()), Key: aws.String(key), UploadId: aws.String(pos.Upload), PartNumberMarker: marker,
			})
			return err
		})
		if err != nil {
			if code, status := s3store.ErrorCode(err); code == "NoSuchUpload" || status == http.StatusNotFound {
				return nil, fmt.Errorf("%w: upload %s of %s, which the checkpoint continues, no longer exists (aborted by hand, by a lifecycle rule, or by a restart of the job)", ErrUploadGone, pos.Upload, pos.Object)
			}
			return nil, err
		}
		for _, p := range out.Parts {
			got[aws.ToInt32(p.PartNumber)] = listed{etag: aws.ToString(p.ETag), size: aws.ToInt64(p.Size), crc: aws.ToString(p.ChecksumCRC32C)}
		}
		if !aws.ToBool(out.IsTruncated) || out.NextPartNumberMarker == nil || aws.ToString(out.NextPartNumberMarker) == aws.ToString(marker) {
			break
		}
		marker = out.NextPartNumberMarker
	}
	for _, p := range pos.Parts {
		l, ok := got[p.N]
		switch {
		case !ok:
			return nil, fmt.Errorf("%w: part %d of upload %s of %s, which the checkpoint recorded, is missing", sink.ErrOutputChanged, p.N, pos.Upload, pos.Object)
		case l.size != p.Size:
			return nil, fmt.Errorf("%w: part %d of upload %s of %s is %d bytes; the checkpoint recorded %d", sink.ErrOutputChanged, p.N, pos.Upload, pos.Object, l.size, p.Size)
		case l.crc != "" && l.crc != p.CRC:
			return nil, fmt.Errorf("%w: part %d of upload %s of %s has CRC32C %s; the checkpoint recorded %s", sink.ErrOutputChanged, p.N, pos.Upload, pos.Object, l.crc, p.CRC)
		}
	}
	return got, nil
}

// readTail reads the tail object of pos back, checking its size and CRC.
func readTail(ctx context.Context, st *s3store.Store, pos Position) ([]byte, error) {
	t := pos.Tail
	var data []byte
	err := st.Do(ctx, "GetObject", t.Key, func(ctx context.Context) error {
		out, err := st.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(st.Bucket()), Key: aws.String(t.Key)})
		if err != nil {
			return err
		}
		defer out.Body.Close()
		data, err = io.ReadAll(out.Body)
		return err
	})
	if err != nil {
		if code, status := s3store.ErrorCode(err); code == "NoSuchKey" || status == http.StatusNotFound {
			return nil, fmt.Errorf("%w: %s: the object %s holding the last %d bytes the checkpoint wrote is gone", sink.ErrOutputChanged, pos.Object, t.Key, t.Size)
		}
		return nil, err
	}
	if int64(len(data)) != t.Size || s3store.CRC32C(data) != t.CRC {
		return nil, fmt.Errorf("%w: %s: the object %s holding the last %d bytes the checkpoint wrote has other bytes (%d)", sink.ErrOutputChanged, pos.Object, t.Key, t.Size, len(data))
	}
	return data, nil
}

// removeTails removes every tail object of the output key.
func removeTails(ctx context.Context, st *s3store.Store, key string, log *slog.Logger) {
	objs, err := st.ListKeys(ctx, tailPrefix(key))
	if err != nil {
		log.Warn("s3io: could not list the tail objects", "prefix", tailPrefix(key), "err", err)
		return
	}
	for _, o := range objs {
		err := st.Do(ctx, "DeleteObject", o.Key, func(ctx context.Context) error {
			_, err := st.Client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(st.Bucket()), Key: aws.String(o.Key)})
			return err
		})
		if err != nil {
			log.Warn("s3io: could not remove a tail object", "key", o.Key, "err", err)
		}
	}
}

// abortUploads aborts every incomplete upload of exactly key: those of
// earlier runs of the job, killed before their first checkpoint or
// restarted. An output has one writer, its job.
func abortUploads(ctx context.Context, st *s3store.Store, key string, log *slog.Logger) error {
	var keyMarker, idMarker *string
	for {
		var out *s3.ListMultipartUploadsOutput
		err := st.Do(ctx, "ListMultipartUploads", display(st.Bucket(), key), func(ctx context.Context) error {
			var err error
			out, err = st.Client().ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{
				Bucket: aws.String(st.Bucket()), Prefix: aws.String(key), KeyMarker: keyMarker, UploadIdMarker: idMarker,
			})
			return err
		})
		if err != nil {
			return err
		}
		for _, u := range out.Uploads {
			if aws.ToString(u.Key) == key {
				st.Abort(ctx, key, aws.ToString(u.UploadId))
				log.Debug("s3io: aborted an abandoned upload", "object", display(st.Bucket(), key), "upload", aws.ToString(u.UploadId))
			}
		}
		if !aws.ToBool(out.IsTruncated) || (out.NextKeyMarker == nil && out.NextUploadIdMarker == nil) {
			break
		}
		keyMarker, idMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
	removeTails(ctx, st, key, log)
	return nil
}
