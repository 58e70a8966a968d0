package ckpt

// SetChunkSize sets the raw size at which j cuts its state into blobs, so
// that tests reach multi-chunk states without writing megabytes. Readers do
// not depend on the chunk size: it is the writer's choice alone.
func SetChunkSize[S any](j *Job[S], n int) { j.w.chunkSize = n }

// InlineLimit is the largest blob kept inline in a manifest.
const InlineLimit = inlineLimit
