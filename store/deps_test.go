package store_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// remoteModules are the dependencies that only the S3 and PostgreSQL
// backends and the JetStream source and sink need.
var remoteModules = []string{"github.com/aws/aws-sdk-go-v2", "github.com/aws/smithy-go", "github.com/jackc/pgx", "github.com/nats-io/"}

// deps lists the packages that pkg links, with go list -deps.
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list dependencies: %v", err)
	}
	out, err := exec.Command(gobin, "list", "-deps", pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
	}
	return strings.Fields(string(out))
}

func linked(pkgs []string, module string) []string {
	var found []string
	for _, p := range pkgs {
		if p == module || strings.HasPrefix(p, strings.TrimSuffix(module, "/")+"/") {
			found = append(found, p)
		}
	}
	return found
}

// A program that imports only ckpt and keeps its checkpoints on local
// disk links neither the AWS SDK nor pgx: backends register their URL
// schemes when imported, and only the local and in-memory ones are
// imported by the root package.
func TestLocalProgramsLinkNoRemoteBackend(t *testing.T) {
	for _, pkg := range []string{"github.com/ckptdev/ckpt/examples/counter", "./testdata/localonly"} {
		t.Run(pkg, func(t *testing.T) {
			pkgs := deps(t, pkg)
			if !slices.Contains(pkgs, "github.com/ckptdev/ckpt/store/filestore") {
				t.Fatalf("%s does not link the file store; the listing is not what this test expects:\n%s", pkg, strings.Join(pkgs, "\n"))
			}
			for _, m := range remoteModules {
				if found := linked(pkgs, m); len(found) > 0 {
					t.Errorf("%s links %s (%s): a program that keeps checkpoints on local disk must not pay for a remote backend; is a backend imported by package ckpt?", pkg, m, strings.Join(found, ", "))
				}
			}
		})
	}
	// The check sees a remote backend where one is imported: the CLI
	// serves s3:// and postgres:// stores, and reads and writes nats://
	// streams.
	t.Run("cmd/ckpt", func(t *testing.T) {
		pkgs := deps(t, "github.com/ckptdev/ckpt/cmd/ckpt")
		for _, m := range remoteModules {
			if len(linked(pkgs, m)) == 0 {
				t.Errorf("cmd/ckpt does not link %s: it must serve s3:// and postgres:// stores and nats:// streams", m)
			}
		}
	})
}

// The packages a pipeline over local files uses link no remote client
// either: S3 inputs and outputs live in package s3io, which only the
// programs that read or write S3 import.
func TestFilePipelinesLinkNoRemoteClient(t *testing.T) {
	for _, pkg := range []string{"github.com/ckptdev/ckpt/pipeline", "github.com/ckptdev/ckpt/source", "github.com/ckptdev/ckpt/sink"} {
		pkgs := deps(t, pkg)
		for _, m := range remoteModules {
			if found := linked(pkgs, m); len(found) > 0 {
				t.Errorf("%s links %s (%s)", pkg, m, strings.Join(found, ", "))
			}
		}
	}
}
