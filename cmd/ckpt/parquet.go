package main

import (
	"github.com/spf13/cobra"

	"github.com/ckptdev/ckpt/convert"
	"github.com/ckptdev/ckpt/pipeline"
)

// parquetDefaults sets the checkpoint spacing of a Parquet output, where
// every checkpoint ends a row group: every million records or 128 MiB of
// input, and no interval, so that row groups are large and fall at the
// same records in every run (a resumed job then writes the same bytes as
// an uninterrupted one). Flags given by hand win.
func parquetDefaults(cmd *cobra.Command, cfg *pipeline.Config) {
	fl := cmd.Flags()
	if !fl.Changed("every") {
		cfg.Every.Records = convert.ParquetRowGroupRecords
	}
	if !fl.Changed("every-bytes") {
		cfg.Every.Bytes = convert.ParquetRowGroupBytes
	}
	if !fl.Changed("interval") {
		cfg.Every.Interval = 0
	}
}
