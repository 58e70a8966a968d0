// Command ckpt inspects and maintains the checkpoints of resumable ckpt
// jobs. Run `ckpt --help` for the commands and their exit codes, or see
// docs/CLI.md.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
