package main

import (
	"path"
	"strings"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/store"
)

// s3Target is the target of a job writing the S3 object at output: the
// job is named after the key's base name and identified by bucket and key
// (not the endpoint or the other query parameters, which may change
// between runs), and its checkpoints go to .ckpt in the working
// directory unless --store names another store.
func s3Target(verb, output string, pf *pipelineFlags) (target, error) {
	loc, err := store.ParseURL(output)
	if err != nil {
		return target{}, usageErrorf("output: %v", err)
	}
	key := strings.TrimPrefix(loc.URL.Path, "/")
	if key == "" || strings.HasSuffix(key, "/") || strings.ContainsAny(key, "*?[") {
		return target{}, usageErrorf("output %s: name one object, as s3://bucket/key.jsonl", store.Redact(loc.URL))
	}
	object := "s3://" + loc.URL.Host + "/" + key
	if pf.store == "" {
		pf.store = ckpt.DefaultStore
	}
	return target{verb: verb, output: path.Base(key), id: object, display: object, noLegacy: true}, nil
}
