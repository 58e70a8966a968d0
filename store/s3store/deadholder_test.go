package s3store_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ckptdev/ckpt/internal/testenv"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/s3store"
)

const holdEnv = "CKPT_S3STORE_TEST_HOLD"

// TestHoldLockChild is not a test: run by TestKilledHolderIsTakenOverAtOnce
// as a child process, it takes a lock and holds it until it is killed.
func TestHoldLockChild(t *testing.T) {
	if os.Getenv(holdEnv) == "" {
		t.Skip("a helper process of TestKilledHolderIsTakenOverAtOnce")
	}
	var o s3store.Options
	if err := json.Unmarshal([]byte(os.Getenv(holdEnv)), &o); err != nil {
		t.Fatal(err)
	}
	st, err := s3store.Open(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	l, err := st.Lock(t.Context(), "jobs/k/LOCK", store.Owner{ID: "child", PID: os.Getpid(), Host: host, Since: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("locked %d\n", l.Token())
	select {} // until killed
}

// A holder killed with SIGKILL on this host leaves a live lease behind;
// the next Lock sees that its process is gone and takes the lock over at
// once, with a greater fencing token, instead of waiting out the TTL.
func TestKilledHolderIsTakenOverAtOnce(t *testing.T) {
	t.Parallel()
	b := testenv.S3(t)
	o := options(b, "killed")
	o.LeaseTTL = time.Hour // waiting for expiry would fail the test
	o.NoLockWait = true    // and so would a wait at all
	cfg, err := json.Marshal(struct {
		Bucket, Prefix, Endpoint, Region string
		PathStyle                        bool
		LeaseTTL                         time.Duration
	}{o.Bucket, o.Prefix, o.Endpoint, o.Region, true, o.LeaseTTL})
	if err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHoldLockChild$")
		cmd.Env = append(os.Environ(), append(b.Env(), holdEnv+"="+string(cfg))...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		var childToken uint64
		if _, serr := fmt.Sscanf(line, "locked %d", &childToken); err != nil || serr != nil {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("round %d: the child did not lock: %q, %v\n%s", round, line, err, stderr.String())
		}
		cmd.Process.Kill() // SIGKILL: the lease stays in the bucket, live
		cmd.Wait()

		rec := newLogRecorder()
		o.Logger = rec.logger()
		st := open(t, o)
		l, err := st.Lock(t.Context(), "jobs/k/LOCK", owner(1))
		if err != nil {
			t.Fatalf("round %d: Lock after the holder was killed: %v", round, err)
		}
		if l.Token() <= childToken {
			t.Errorf("round %d: token %d after the killed holder's %d", round, l.Token(), childToken)
		}
		if rec.count("has exited", fmt.Sprint(cmd.Process.Pid)) != 1 {
			t.Errorf("round %d: the takeover was not logged naming the dead holder:\n%s", round, rec)
		}
		// Killed again next round, so that the child takes over from a
		// process (this one) that released, and the rerun from a killed one.
		if err := l.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}

// A live lease of a holder on another host, which nobody renews (its
// holder died there): Lock says once how long it waits, then takes the
// lock over when the lease expires. With NoLockWait it is refused.
func TestLockWaitsForAnUnrenewedLease(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: waits for a lease to expire")
	}
	t.Parallel()
	b := testenv.S3(t)
	const name = "jobs/w/LOCK"
	gone := owner(9) // of another host
	rec, _ := json.Marshal(map[string]any{"token": 41, "holder": gone, "lease": "dead", "ttl_ms": 1000})
	if _, err := b.Client().PutObject(t.Context(), &s3.PutObjectInput{
		Bucket: aws.String(b.Bucket), Key: aws.String("wait/.ckpt-locks/" + name), Body: bytes.NewReader(rec),
	}); err != nil {
		t.Fatal(err)
	}

	o := options(b, "wait")
	o.NoLockWait = true
	_, err := open(t, o).Lock(t.Context(), name, owner(1))
	wantLockedBy(t, err, gone)

	o.NoLockWait = false
	logs := newLogRecorder()
	o.Logger = logs.logger()
	l, err := open(t, o).Lock(t.Context(), name, owner(1))
	if err != nil {
		t.Fatalf("Lock of an unrenewed lease: %v", err)
	}
	defer l.Release(t.Context())
	if l.Token() != 42 {
		t.Errorf("token %d, want 42", l.Token())
	}
	if n := logs.count("waiting up to", gone.Host); n != 1 {
		t.Errorf("the wait was logged %d times, want once:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "taking over") {
		t.Errorf("the takeover was not logged:\n%s", logs)
	}
}
