// Package asset orchestrates assets: named data products, each computed by
// Go code from the assets it depends on. Every successful materialization
// is recorded in an event log and its value persisted in a ckpt store, so
// that a failed or killed run resumes from the last good materializations,
// and only what is missing or stale is computed again.
//
// Define assets on a Graph with typed constructors; the compute function
// receives its inputs with their types, and the graph is validated before
// anything runs (unknown dependency, cycle, duplicate key, type mismatch):
//
//	g := asset.New()
//	raw := asset.Define(g, asset.Spec{Key: "raw"}, func(c *asset.Context) ([]Order, error) { ... })
//	clean := asset.Define1(g, asset.Spec{Key: "clean", CodeVersion: "2"}, raw,
//		func(c *asset.Context, orders []Order) ([]Order, error) { ... })
//
// Then open an Instance (the value store and the event log) and
// materialize a selection, resume a run, or ask for the status of every
// asset and partition:
//
//	in, err := asset.Open(ctx, g, asset.Config{Store: ".ckpt"})
//	run, err := in.Materialize(ctx, asset.MaterializeOptions{Selection: "clean+"})
//	run, err = in.Resume(ctx, run.ID, asset.ResumeOptions{})
//	statuses, err := in.Status(ctx, asset.StatusOptions{})
//
// Package assetcli turns a Graph into the commands of a program (assets
// list, status, materialize, history, lineage; runs list, show, resume,
// prune); docs/ASSETS.md describes the model.
package asset
