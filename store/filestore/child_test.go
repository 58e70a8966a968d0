package filestore_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"

	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/filestore"
)

// runChild runs this test binary as a child process in role, with its
// parameters in the environment, and returns the exit code. The parent
// synchronises on the lines it prints to stdout.
func runChild(role string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	st, err := filestore.Open(os.Getenv("CKPT_TEST_DIR"), filestore.Options{Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	host, _ := os.Hostname()
	owner := store.Owner{ID: "child-" + role, PID: os.Getpid(), Host: host}
	switch role {
	case "hold-lock":
		err = holdLock(st, os.Getenv("CKPT_TEST_LOCK"), owner)
	case "writer":
		err = writeForever(st, owner)
	default:
		err = fmt.Errorf("unknown child role %q", role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// holdLock takes the lock, prints "locked <token>", holds it until stdin
// closes, releases it and prints "released".
func holdLock(st store.Store, name string, owner store.Owner) error {
	ctx := context.Background()
	l, err := st.Lock(ctx, name, owner)
	if err != nil {
		return err
	}
	fmt.Printf("locked %d\n", l.Token())
	io.Copy(io.Discard, os.Stdin)
	if err := l.Release(ctx); err != nil {
		return err
	}
	fmt.Println("released")
	return nil
}

// writeForever is the writer of the crash test. It takes the lock "LOCK"
// (taking it over from the writer killed before it), prints "ready
// <token>", then writes objects of generation CKPT_TEST_GEN under "objs/"
// until it is killed, printing "ok <name> <version>" after each write
// returns: from that line on, the object must survive the kill.
func writeForever(st store.Store, owner store.Owner) error {
	ctx := context.Background()
	gen, err := strconv.Atoi(os.Getenv("CKPT_TEST_GEN"))
	if err != nil {
		return err
	}
	seed, err := strconv.ParseUint(os.Getenv("CKPT_TEST_SEED"), 10, 64)
	if err != nil {
		return err
	}
	l, err := st.Lock(ctx, "LOCK", owner)
	if err != nil {
		return err
	}
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(out, "ready %d\n", l.Token())
	if err := out.Flush(); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(seed, uint64(gen)))
	var written []string
	versions := map[string]int{}
	for i := 0; ; i++ {
		var name string
		replace := len(written) > 0 && rng.IntN(4) == 0
		if replace {
			name = written[rng.IntN(len(written))]
		} else {
			name = fmt.Sprintf("objs/g%04d/o%05d", gen, i)
			written = append(written, name)
		}
		versions[name]++
		data := crashObject(name, versions[name], crashSize(rng))
		if replace || i%2 == 0 {
			err = st.Put(ctx, name, reader(data))
		} else {
			err = st.Create(ctx, name, reader(data))
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		fmt.Fprintf(out, "ok %s %d\n", name, versions[name])
		if err := out.Flush(); err != nil {
			return err
		}
	}
}

// crashSize is mostly small, sometimes up to 3 MiB, so that kills land
// both between writes and inside long ones.
func crashSize(rng *rand.Rand) int {
	if rng.IntN(8) == 0 {
		return rng.IntN(3 << 20)
	}
	return rng.IntN(64 << 10)
}
