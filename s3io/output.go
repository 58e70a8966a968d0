package s3io

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/ckptdev/ckpt/pipeline"
	"github.com/ckptdev/ckpt/sink"
	"github.com/ckptdev/ckpt/store"
)

// Output is a pipeline output written to the S3 object at URL (see the
// package documentation for the address), exactly once: a
// pipeline.SinkOpener of Writers.
type Output struct {
	URL string
	// Replace lets a job that starts from the beginning replace an object
	// that exists: it stays as it is until the job finishes, and is then
	// replaced whole. Without it such a job is refused (ErrOutputExists).
	// The choice is recorded in the checkpoints, for the resumes.
	Replace bool
	// Logger receives warnings; nil means slog.Default().
	Logger *slog.Logger
}

var _ pipeline.SinkOpener[*Writer] = Output{}

func (o Output) log() *slog.Logger {
	if o.Logger == nil {
		return slog.Default()
	}
	return o.Logger
}

// Open opens the output: fresh when pos is nil, aborting the incomplete
// uploads of the object that earlier runs left and starting a new one;
// otherwise continuing the upload pos records (see Writer). An output
// that is one of inputs is refused (pipeline.ErrOutputIsInput).
func (o Output) Open(ctx context.Context, pos json.RawMessage, inputs []string) (*Writer, error) {
	st, key, err := open(ctx, o.URL, o.log())
	if err != nil {
		return nil, err
	}
	w := &Writer{st: st, key: key, object: display(st.Bucket(), key), addr: o.URL, log: o.log(), partSize: st.PartSize(),
		sem: make(chan struct{}, st.Concurrency()), free: make(chan []byte, st.Concurrency())}
	for _, in := range inputs {
		if in == w.object {
			st.Close()
			return nil, fmt.Errorf("%w: %s is an input, which writing would replace: write to another object", pipeline.ErrOutputIsInput, w.object)
		}
	}
	if len(pos) == 0 || string(pos) == "null" {
		err = w.start(ctx, o.Replace)
	} else {
		err = w.resume(ctx, pos)
	}
	if err != nil {
		st.Close()
		return nil, err
	}
	w.buf = growTo(w.buf, int(w.partSize+w.partSize/8))
	return w, nil
}

func growTo(b []byte, n int) []byte {
	if cap(b) >= n {
		return b
	}
	nb := make([]byte, len(b), n)
	copy(nb, b)
	return nb
}

// start begins the job's upload, after aborting those of earlier runs.
func (w *Writer) start(ctx context.Context, replace bool) error {
	if err := abortUploads(ctx, w.st, w.key, w.log); err != nil {
		return err
	}
	if !replace {
		if _, err := w.st.HeadObject(ctx, w.key); err == nil {
			return fmt.Errorf("%w: %s exists, and a job creates its output: it overwrites no object it did not write (restart the job to replace the object when the job finishes, or delete it)", ErrOutputExists, w.object)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	w.write, w.replace = newID(), replace
	return w.st.Do(ctx, "CreateMultipartUpload", w.object, func(ctx context.Context) error {
		out, err := w.st.Client().CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
			Bucket: aws.String(w.st.Bucket()), Key: aws.String(w.key),
			ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c, ChecksumType: types.ChecksumTypeFullObject,
			Metadata: map[string]string{metaUpload: w.write},
		})
		if err != nil {
			return err
		}
		w.upload = aws.ToString(out.UploadId)
		return nil
	})
}

// parsePosition decodes an output position and checks that it is one of
// object's.
func parsePosition(raw json.RawMessage, object string) (Position, error) {
	var p Position
	if err := json.Unmarshal(raw, &p); err != nil || p.Upload == "" || p.Length < 0 {
		return p, fmt.Errorf("bad S3 output position in checkpoint: %s", raw)
	}
	if p.Object != object {
		return p, fmt.Errorf("%w: the checkpoint wrote %s, not %s", sink.ErrOutputChanged, p.Object, object)
	}
	return p, nil
}

// resume continues the upload pos records.
func (w *Writer) resume(ctx context.Context, raw json.RawMessage) error {
	pos, err := parsePosition(raw, w.object)
	if err != nil {
		return err
	}
	crc, err := parseCRC(pos.CRC)
	if err != nil {
		return err
	}
	got, err := listParts(ctx, w.st, w.key, pos)
	if err != nil {
		return err
	}
	var tail []byte
	if pos.Tail != nil {
		if tail, err = readTail(ctx, w.st, pos); err != nil {
			return err
		}
		w.tails = []string{pos.Tail.Key}
	}
	w.upload, w.write, w.replace = pos.Upload, pos.Write, pos.Replace
	for _, p := range pos.Parts {
		ps := &partState{Part: p, etag: got[p.N].etag, done: make(chan struct{})}
		close(ps.done)
		w.parts = append(w.parts, ps)
		w.n += p.Size
	}
	if w.n+int64(len(tail)) != pos.Length {
		return fmt.Errorf("bad S3 output position in checkpoint: its parts and tail hold %d bytes, its length is %d", w.n+int64(len(tail)), pos.Length)
	}
	w.crc, w.buf = crc, tail
	return nil
}

func parseCRC(s string) (uint32, error) {
	var c uint32
	if _, err := fmt.Sscanf(s, "%x", &c); err != nil {
		return 0, fmt.Errorf("bad S3 output position in checkpoint: CRC %q", s)
	}
	return c, nil
}

// Verify checks that the object is the one the job's final checkpoint,
// at pos, describes: written by the job's upload, of its length. A job
// that died after its final checkpoint but before its upload completed
// has its upload completed now: the final checkpoint is the commit
// point, and completing is carrying it out (the only change Verify
// makes, besides removing the job's tail objects).
func (o Output) Verify(ctx context.Context, raw json.RawMessage) error {
	st, key, err := open(ctx, o.URL, o.log())
	if err != nil {
		return err
	}
	defer st.Close()
	object := display(st.Bucket(), key)
	pos, err := parsePosition(raw, object)
	if err != nil {
		return err
	}
	head, err := st.HeadObject(ctx, key)
	switch {
	case err == nil:
		if head.Metadata[metaUpload] != pos.Write {
			return fmt.Errorf("%w: %s was replaced since the job wrote it", sink.ErrOutputChanged, object)
		}
		if n := aws.ToInt64(head.ContentLength); n != pos.Length {
			return fmt.Errorf("%w: %s is %d bytes; the job wrote %d", sink.ErrOutputChanged, object, n, pos.Length)
		}
		// A run killed between completing the upload and removing the
		// tail objects left them: they are the job's own, and useless.
		removeTails(ctx, st, key, o.log())
		return nil
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	if _, err := listParts(ctx, st, key, pos); err != nil {
		if errors.Is(err, ErrUploadGone) {
			return fmt.Errorf("%w: %s no longer exists (the job wrote %d bytes to it)", sink.ErrOutputChanged, object, pos.Length)
		}
		return err
	}
	var tail []byte
	if pos.Tail != nil {
		if tail, err = readTail(ctx, st, pos); err != nil {
			return err
		}
	}
	o.log().Info("completing the output of a job that finished before its upload was completed", "object", object)
	return complete(ctx, st, key, pos, map[int32]string{}, tail, o.log())
}

// AddressOf returns the address of the S3 output whose position in a
// checkpoint is raw, or false if raw is no S3 output's position.
func AddressOf(raw json.RawMessage) (string, bool) {
	var p Position
	if json.Unmarshal(raw, &p) != nil || p.Upload == "" || !IsAddress(p.Address) {
		return "", false
	}
	return p.Address, true
}

// Abandon aborts the incomplete uploads of the object at url and removes
// their tail objects: what a job deleted or restarted leaves.
func Abandon(ctx context.Context, url string, log *slog.Logger) error {
	st, key, err := open(ctx, url, log)
	if err != nil {
		return err
	}
	defer st.Close()
	if log == nil {
		log = slog.Default()
	}
	return abortUploads(ctx, st, key, log)
}
