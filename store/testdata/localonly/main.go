// Command localonly keeps its checkpoints in a local directory and imports
// nothing of ckpt but the root package: it must link no remote backend.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/ckptdev/ckpt"
)

func main() {
	st, err := ckpt.OpenStore(context.Background(), os.TempDir()+"/localonly-store", nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	st.Close()
}
