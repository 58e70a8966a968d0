package locallock

import (
	"context"
	"errors"
	"testing"

	"github.com/ckptdev/ckpt/store"
)

func TestTable(t *testing.T) {
	ctx := context.Background()
	for _, clock := range []bool{false, true} {
		tab := &Table{ClockTokens: clock}
		a, err := tab.Lock("x", store.Owner{ID: "a"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tab.Lock("x", store.Owner{ID: "b"}); !errors.Is(err, store.ErrLocked) {
			t.Fatalf("second Lock: %v, want ErrLocked", err)
		}
		var le *store.LockedError
		if _, err := tab.Lock("x", store.Owner{ID: "b"}); !errors.As(err, &le) || le.Holder.ID != "a" {
			t.Fatalf("second Lock: %v, want a LockedError naming a", err)
		}
		if _, err := tab.Lock("y", store.Owner{}); err != nil {
			t.Fatalf("another name: %v", err)
		}
		if err := a.Check(ctx); err != nil {
			t.Fatal(err)
		}
		a.Release(ctx)
		a.Release(ctx)
		if err := a.Check(ctx); !errors.Is(err, store.ErrLeaseLost) {
			t.Fatalf("Check after Release: %v", err)
		}
		b, err := tab.Lock("x", store.Owner{ID: "b"})
		if err != nil {
			t.Fatal(err)
		}
		if b.Token() <= a.Token() {
			t.Fatalf("tokens %d then %d: not increasing", a.Token(), b.Token())
		}
		if !clock && (a.Token() != 1 || b.Token() != 2) {
			t.Fatalf("tokens %d, %d; want 1, 2", a.Token(), b.Token())
		}
		// A released lease's Release does not free the new holder's lock.
		a.Release(ctx)
		if err := b.Check(ctx); err != nil {
			t.Fatalf("the new holder lost its lock to an old Release: %v", err)
		}
	}
}
