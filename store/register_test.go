package store_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt/store"
)

// This test binary imports no backend: every address fails, and the
// error names the package whose import serves it.
func TestOpenUnregisteredSchemeNamesTheImport(t *testing.T) {
	for _, tc := range []struct{ url, pkg string }{
		{"s3://bucket/prefix?endpoint=http://127.0.0.1:1", "github.com/ckptdev/ckpt/store/s3store"},
		{"postgres://u:SECRET@127.0.0.1:1/db", "github.com/ckptdev/ckpt/store/pgstore"},
		{"postgresql://127.0.0.1:1/db", "github.com/ckptdev/ckpt/store/pgstore"},
		{t.TempDir(), "github.com/ckptdev/ckpt/store/filestore"},
		{"mem://x", "github.com/ckptdev/ckpt/store/memstore"},
	} {
		st, err := store.Open(context.Background(), tc.url, nil)
		if err == nil {
			st.Close()
			t.Fatalf("Open(%q) succeeded with no backend linked", tc.url)
		}
		if !errors.Is(err, store.ErrNoBackend) {
			t.Errorf("Open(%q) = %v, want ErrNoBackend", tc.url, err)
		}
		if want := `import _ "` + tc.pkg + `"`; !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%q) = %q, want it to say %s", tc.url, err, want)
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("Open(%q) error shows the password: %q", tc.url, err)
		}
	}
	if got := store.Schemes(); len(got) != 0 {
		t.Errorf("Schemes() = %v in a program that imports no backend", got)
	}
}

func TestRegisterRefusesMistakes(t *testing.T) {
	open := func(context.Context, store.Location, *slog.Logger) (store.Store, error) { return nil, nil }
	for name, f := range map[string]func(){
		"unknown scheme": func() { store.Register("ftp", open) },
		"nil opener":     func() { store.Register("s3", nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: Register did not panic", name)
				}
			}()
			f()
		}()
	}
}
