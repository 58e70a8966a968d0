package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ckptdev/ckpt/asset"
	"github.com/ckptdev/ckpt/ui"
)

func newUICmd(a *app) *cobra.Command {
	var (
		sf      storeFlags
		events  string
		listen  string
		actions bool
	)
	cmd := &cobra.Command{
		Use:   "ui",
		Short: "Serve a web UI of the jobs in a store and the runs of an event log",
		Long: `Serve a web UI: the jobs of a store (running, finished or stopped; their
checkpoint history with sizes over time; verification of a checkpoint on
demand) and, with --events, the assets and runs of an asset event log (runs
with their steps as a timeline, partition health). Pages refresh themselves
while jobs run. Prometheus metrics of the store's jobs are at /metrics.

The UI listens on ` + ui.DefaultListen + ` (this machine only) unless --listen
says otherwise. It is read-only: --allow-actions lets a job's page delete
checkpoints (refused while the job runs); resuming asset runs needs the
assets' code, and is offered by an asset program's own ui command. Action
requests must come from the UI's own pages.

Without --events, the event log assets.db of a local store is shown if it
exists. Staleness of assets is judged by their code, which ckpt does not
have: the asset program's own ui command shows it.`,
		Example: `  ckpt ui
  ckpt ui --store /data/ckpt --events /data/ckpt/assets.db
  ckpt ui --store s3://bucket/ckpt?region=eu-west-1 --events postgres://ckpt@db/ckpt --listen 127.0.0.1:9000`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			st, loc, err := a.openStore(ctx, sf.url)
			if err != nil {
				return err
			}
			defer st.Close()
			o := ui.Options{Store: st, StoreName: loc.String(), AllowActions: actions, Logger: a.log}
			if events == "" && loc.Scheme == "file" {
				// Only an existing log: opening one creates it.
				if _, err := os.Stat(filepath.Join(loc.Path, "assets.db")); err == nil {
					events = filepath.Join(loc.Path, "assets.db")
				} else if !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("look for the event log in %s: %w", loc, err)
				}
			}
			if events != "" {
				in, err := asset.Open(ctx, asset.New(), asset.Config{Backend: st, EventLog: events, Logger: a.log})
				if err != nil {
					return withHint(err, "--events takes a SQLite file or a postgres:// URL")
				}
				defer in.Close()
				o.Assets, o.EventsName = in, in.EventLog().String()
			}
			h, err := ui.New(o)
			if err != nil {
				return err
			}
			defer h.Close()
			ln, loopback, err := ui.Listen(listen)
			if err != nil {
				return usageErrorf("--listen: %w", err)
			}
			if !loopback {
				a.log.Warn("the UI is reachable from other machines: anyone who can connect reads every page", "listen", ln.Addr().String())
			}
			a.infof("ckpt ui: serving %s on http://%s/ (Ctrl-C stops)\n", loc, ln.Addr())
			return ui.Serve(ctx, ln, h)
		},
	}
	sf.addStore(cmd)
	f := cmd.Flags()
	f.StringVar(&events, "events", "", "the asset event log: a SQLite file or a postgres:// URL (default: assets.db of a local store, if it exists)")
	f.StringVar(&listen, "listen", ui.DefaultListen, "the address to serve on; one that is not loopback exposes the UI to the network")
	f.BoolVar(&actions, "allow-actions", false, "allow deleting checkpoints from the pages (refused otherwise)")
	return cmd
}
