package assetcli

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ckptdev/ckpt"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/ui"
)

func (c *cli) uiCmd() *cobra.Command {
	var listen string
	var actions bool
	cmd := &cobra.Command{
		Use:   "ui",
		Short: "Serve a web UI of the assets and runs",
		Long: `Serve a web UI of the assets: their lineage graph with each asset's state
(fresh, stale, missing, failed) and why, each asset's materialization
history, metadata, checks and partition health, and the runs with their
steps as a timeline. Pages refresh themselves while runs go on.

The UI listens on ` + ui.DefaultListen + ` (this machine only) unless --listen
says otherwise, and is read-only unless --allow-actions is given: then a
failed, canceled or dead run can be resumed from its page (in this
process, which must stay up while it runs), and a run resumed here can be
canceled. Action requests must come from the UI's own pages.`,
		Example: `  ui
  ui --listen 127.0.0.1:9000 --allow-actions`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			in, err := c.open(cmd)
			if err != nil {
				return err
			}
			defer in.Close()
			where := c.store
			if where == "" {
				where = ckpt.DefaultStore
			}
			name := ""
			if loc, err := store.ParseURL(where); err == nil {
				name = loc.String()
			}
			h, err := ui.New(ui.Options{Assets: in, StoreName: name, EventsName: in.EventLog().String(), AllowActions: actions})
			if err != nil {
				return err
			}
			defer h.Close() // cancels the runs it resumed; they can be resumed again
			ln, loopback, err := ui.Listen(listen)
			if err != nil {
				return usage(err)
			}
			if !loopback {
				fmt.Fprintf(c.errw(cmd), "%s: warning: the UI is reachable from other machines at %s: anyone who can connect reads every page\n", c.o.Name, ln.Addr())
			}
			c.infof(cmd, "%s ui: serving on http://%s/ (Ctrl-C stops)\n", c.o.Name, ln.Addr())
			return ui.Serve(ctx, ln, h)
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.store, "store", envOr("CKPT_STORE", c.o.Config.Store), "the store of asset values: a directory, file:///abs/dir, s3://..., postgres://...")
	f.StringVar(&c.events, "events", envOr("CKPT_EVENTS", c.o.Config.EventLog), "the event log: a SQLite file or a postgres:// URL")
	f.StringVar(&c.logLevel, "log-level", "error", "least severe log level shown on stderr: debug, info, warn or error")
	f.BoolVarP(&c.quiet, "quiet", "q", false, "print only errors")
	f.StringVar(&listen, "listen", ui.DefaultListen, "the address to serve on; one that is not loopback exposes the UI to the network")
	f.BoolVar(&actions, "allow-actions", false, "allow resuming and canceling runs from the pages")
	return cmd
}
