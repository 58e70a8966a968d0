package s3io

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/ckptdev/ckpt/sink"
	"github.com/ckptdev/ckpt/store/s3store"
)

// The requests on a job's upload that the writer, a resume and the check
// of a finished job share: completing it, listing its parts, reading a
// tail back, and cleaning up what abandoned runs left.

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
	if missing := anyETagMissing(parts, etags); missing {
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

// anyETagMissing reports whether a part of parts has no ETag in etags.
func anyETagMissing(parts []Part, etags map[int32]string) bool {
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
