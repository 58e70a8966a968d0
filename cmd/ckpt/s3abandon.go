package main

import (
	"context"
	"encoding/json"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/s3io"
)

// abandonS3Outputs aborts the incomplete multipart uploads (and removes
// the tail objects) of the S3 outputs that the checkpoints of a deleted
// job were writing: nothing would ever complete them. A failure is
// reported, not fatal: the job is deleted, and the parts are invisible.
func (a *app) abandonS3Outputs(ctx context.Context, entries []ckpt.Entry) {
	seen := make(map[string]bool)
	for i := len(entries) - 1; i >= 0; i-- {
		cp := entries[i].Checkpoint
		if cp == nil || len(cp.Sink) == 0 {
			continue
		}
		var pos struct {
			Output json.RawMessage `json:"output"`
		}
		if json.Unmarshal(cp.Sink, &pos) != nil {
			continue
		}
		addr, ok := s3io.AddressOf(pos.Output)
		if !ok || seen[addr] {
			continue
		}
		seen[addr] = true
		if err := s3io.Abandon(ctx, addr, a.log); err != nil {
			a.log.Warn("could not abort the job's incomplete upload; its parts stay invisible until a bucket lifecycle rule removes them", "err", err)
		}
	}
}
