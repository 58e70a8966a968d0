package store_test

import (
	"strings"
	"testing"
)

// Parquet is linked by the programs that read or write it only: not by a
// program that imports ckpt, nor by the pipeline, source and sink
// packages; the CLI links parquet-go, and never Apache Arrow, which the
// tests use as an independent reader only.
func TestParquetLinkedByItsUsersOnly(t *testing.T) {
	for _, pkg := range []string{"github.com/ckptdev/ckpt/examples/counter", "./testdata/localonly",
		"github.com/ckptdev/ckpt/pipeline", "github.com/ckptdev/ckpt/source", "github.com/ckptdev/ckpt/sink"} {
		pkgs := deps(t, pkg)
		for _, m := range []string{"github.com/parquet-go/", "github.com/apache/arrow-go/"} {
			if found := linked(pkgs, m); len(found) > 0 {
				t.Errorf("%s links %s (%s): only the Parquet input and output (package parquetio) may", pkg, m, strings.Join(found, ", "))
			}
		}
	}
	pkgs := deps(t, "github.com/ckptdev/ckpt/cmd/ckpt")
	if len(linked(pkgs, "github.com/parquet-go/parquet-go")) == 0 {
		t.Error("cmd/ckpt does not link parquet-go: it converts to and from Parquet")
	}
	if found := linked(pkgs, "github.com/apache/arrow-go/"); len(found) > 0 {
		t.Errorf("cmd/ckpt links Apache Arrow (%s), which only tests may use", strings.Join(found, ", "))
	}
}
