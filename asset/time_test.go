package asset_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ckptdev/ckpt/asset"
	"github.com/ckptdev/ckpt/codec"
)

// The tests of time-dependent behaviour run on synctest's fake clock: a
// retry delay of minutes or an hour of heartbeats takes no wall-clock
// time, and their timing is exact.

func init() {
	// zstd's shared coders hold channels: made inside a bubble, they could
	// not be used outside it (or in another one). Make them outside.
	if _, err := codec.Zstd.Compress(nil, []byte("ckpt")); err != nil {
		panic(err)
	}
}

// TestRetryWaitsItsDelay: attempts are spaced by the policy's delay,
// multiplied by its backoff after each attempt.
func TestRetryWaitsItsDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var at []time.Time
		g := asset.New()
		asset.Define(g, asset.Spec{Key: "flaky", Retry: asset.RetryPolicy{MaxAttempts: 3, Delay: time.Minute, Backoff: 3}}, func(c *asset.Context) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			at = append(at, time.Now())
			if c.Attempt < 3 {
				return 0, errors.New("transient")
			}
			return c.Attempt, nil
		})
		in, err := asset.Open(context.Background(), g, asset.Config{Store: filepath.Join(t.TempDir(), "store"), Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		if _, err := in.Materialize(context.Background(), asset.MaterializeOptions{}); err != nil {
			t.Fatal(err)
		}
		if len(at) != 3 || at[1].Sub(at[0]) != time.Minute || at[2].Sub(at[1]) != 3*time.Minute {
			t.Errorf("attempts at %v, want 1m then 3m apart", at)
		}
	})
}

// TestHeartbeatWhileComputing: a run records a heartbeat every
// HeartbeatInterval while an asset computes, so that another process sees
// it alive.
func TestHeartbeatWhileComputing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := filepath.Join(t.TempDir(), "store")
		seen := make(chan asset.RunDetails, 1)
		var in *asset.Instance
		g := asset.New()
		asset.Define(g, asset.Spec{Key: "slow"}, func(c *asset.Context) (int, error) {
			time.Sleep(10 * time.Minute)
			d, err := in.RunDetails(c, c.RunID)
			if err != nil {
				return 0, err
			}
			seen <- *d
			return 1, nil
		})
		var err error
		in, err = asset.Open(ctx, g, asset.Config{Store: store, Logger: quiet, HeartbeatInterval: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		if _, err := in.Materialize(ctx, asset.MaterializeOptions{}); err != nil {
			t.Fatal(err)
		}
		d := <-seen
		if beat := d.Heartbeat.Sub(d.Created); beat < 9*time.Minute {
			t.Errorf("10 minutes into the run, its last heartbeat is %s after its start, want at least 9m", beat)
		}
		if !d.Alive {
			t.Error("the computing run is not alive")
		}
	})
}
