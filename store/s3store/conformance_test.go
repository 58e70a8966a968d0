package s3store_test

import (
	"testing"

	"github.com/ckptdev/ckpt/internal/testenv"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/s3store"
	"github.com/ckptdev/ckpt/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, options(testenv.S3(t), "ckpt/test"))
	})
}

// Parts of the smallest size S3 allows, several in flight: the suite's
// objects of 20 MiB go through multipart uploads.
func TestConformanceMultipart(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: the whole suite again with 20 MiB multipart objects; multipart uploads are also checked by TestWriteRetriesDroppedConnection")
	}
	storetest.Run(t, func(t *testing.T) store.Store {
		o := options(testenv.S3(t), "multi")
		o.PartSize = s3store.MinPartSize
		o.Concurrency = 3
		return open(t, o)
	})
}
