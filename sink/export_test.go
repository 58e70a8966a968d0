package sink

import "github.com/klauspost/compress/zstd"

// SetLevels sets the compression levels of outputs opened after it, and
// returns a function that restores them.
func SetLevels(gzip int, z zstd.EncoderLevel) func() {
	g, zl := gzipLevel, zstdLevel
	gzipLevel, zstdLevel = gzip, z
	return func() { gzipLevel, zstdLevel = g, zl }
}
