// Command fleet is a partitioned asset over many input files, one
// partition per file, each converted from CSV to JSON Lines by a
// resumable ckpt job, and computed by a fleet of worker processes through
// River on PostgreSQL. A worker killed in the middle of a file is taken
// over by another, which resumes the file's conversion from the dead
// worker's last checkpoint instead of starting it over.
//
//	export CKPT_EVENTS=postgres://postgres@127.0.0.1:5432/test?sslmode=disable
//	export CKPT_STORE=demo/fleet/store     # shared by the workers (s3:// or postgres:// across machines)
//	go run ./examples/fleet generate --files 24 --rows 300000
//	go build -o fleet ./examples/fleet
//	./fleet workers --parallel 2 &         # three workers: on this machine or others
//	./fleet workers --parallel 2 &
//	./fleet workers --parallel 2 &
//	./fleet assets materialize --executor river
//	kill -9 %2                             # while it runs: another worker takes its files over
//	./fleet runs show last --steps
//
// Input files are read from demo/fleet/in, the converted ones written to
// demo/fleet/out (FLEET_DIR sets the directory; every worker must see the
// same one).
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/asset"
	"github.com/ckptdev/ckpt/asset/assetcli"
	"github.com/ckptdev/ckpt/convert"
	"github.com/ckptdev/ckpt/pipeline"
)

// Converted is the value of a partition: where its output is and how
// many records it has. The data stays in the file.
type Converted struct {
	Output  string `json:"output"`
	Records int64  `json:"records"`
	Resumed bool   `json:"resumed,omitempty"`
}

// progressHook, if set, sees the progress of every conversion (tests).
var progressHook func(pipeline.Progress)

func dir() string {
	if d := os.Getenv("FLEET_DIR"); d != "" {
		return d
	}
	return "demo/fleet"
}

// inputs are the partitions: the input files' base names, sorted.
func inputs() []string {
	paths, _ := filepath.Glob(filepath.Join(dir(), "in", "*.csv"))
	names := make([]string, len(paths))
	for i, p := range paths {
		names[i] = strings.TrimSuffix(filepath.Base(p), ".csv")
	}
	slices.Sort(names)
	return names
}

func graph(store string) *asset.Graph {
	g := asset.New()
	files := asset.StaticPartitions(inputs()...)
	converted := asset.Define(g, asset.Spec{Key: "converted", Partitions: files, External: true,
		Retry: asset.RetryPolicy{MaxAttempts: 3, Delay: time.Second}},
		func(c *asset.Context) (Converted, error) {
			out := filepath.Join(dir(), "out", c.Partition+".jsonl")
			if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
				return Converted{}, err
			}
			cfg := pipeline.Config{Job: "fleet-" + c.RunID + "-" + c.Partition, Params: map[string]string{"to": "jsonl"}}
			cfg.Store = store
			// The worker handles signals; a checkpoint every 20,000 records
			// is where another worker resumes this file if this one dies.
			cfg.NoSignals = true
			cfg.Every = ckpt.Every{Records: 20000}
			cfg.Logger = c.Log
			if progressHook != nil {
				cfg.Progress, cfg.ProgressEvery = progressHook, 10*time.Millisecond
			}
			res, err := convert.Run(c, convert.Options{Input: filepath.Join(dir(), "in", c.Partition+".csv"), Output: out, InferTypes: true, Pipeline: cfg})
			if err != nil && !errors.Is(err, pipeline.ErrAlreadyDone) {
				return Converted{}, err
			}
			if res.Resumed != nil && res.Final != nil && res.Resumed.Seq != res.Final.Seq {
				c.Log.Info("conversion resumed", "file", c.Partition, "from_record", res.Resumed.Records)
			}
			return Converted{Output: out, Records: res.Records, Resumed: res.Resumed != nil}, nil
		})
	asset.Define1(g, asset.Spec{Key: "total_records"}, asset.AllPartitions(converted), func(c *asset.Context, m map[string]Converted) (int64, error) {
		var n int64
		for _, v := range m {
			n += v.Records
		}
		return n, nil
	})
	return g
}

func generateCmd() *cobra.Command {
	var files, rows int
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Write the input CSV files",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in := filepath.Join(dir(), "in")
			if err := os.MkdirAll(in, 0o755); err != nil {
				return err
			}
			for f := range files {
				path := filepath.Join(in, fmt.Sprintf("orders-%03d.csv", f))
				if err := writeInput(path, f, rows); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d files of %d rows in %s\n", files, rows, in)
			return nil
		},
	}
	cmd.Flags().IntVar(&files, "files", 24, "how many input files")
	cmd.Flags().IntVar(&rows, "rows", 300000, "rows per file")
	return cmd
}

func writeInput(path string, file, rows int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "id,customer,amount,paid")
	for i := range rows {
		fmt.Fprintf(w, "%d,c%05d,%d.%02d,%t\n", file*rows+i, (i*7919+file)%50000, (i*31)%1000, i%100, i%3 != 0)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func main() {
	store := os.Getenv("CKPT_STORE")
	if store == "" {
		store = filepath.Join(dir(), "store")
	}
	o := assetcli.Options{Name: "fleet", Config: asset.Config{Store: store}}
	root := &cobra.Command{Use: "fleet", Short: "A partitioned asset over many files, computed by worker processes", SilenceUsage: true}
	root.AddCommand(generateCmd())
	root.AddCommand(assetcli.Commands(graph(store), o)...)
	if err := root.ExecuteContext(context.Background()); err != nil {
		os.Exit(1)
	}
}
