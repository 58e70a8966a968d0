package memstore_test

import (
	"testing"

	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/memstore"
	"github.com/ckptdev/ckpt/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return memstore.New() })
}

// The zero value is documented as an empty store, ready to use.
func TestZeroValueConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return new(memstore.Store) })
}
