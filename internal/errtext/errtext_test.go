package errtext

import "testing"

func TestPlain(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"ckpt: job \"a\": s3store: put x: timeout", "job \"a\": put x: timeout"},
		{"asset: run r: eventlog: write: disk full", "run r: write: disk full"},
		{"open store s3://b (s3store: no usable credentials)", "open store s3://b (no usable credentials)"},
		{"bad record; pipeline: line 3\nsource: column 2", "bad record; line 3; column 2"},
		{"file codec: short read", "short read"},
		// Words that only look like packages are left alone.
		{"the sink is full: sinking", "the sink is full: sinking"},
		{"restore:  two   spaces", "restore: two spaces"},
	} {
		if got := Plain(tc.in); got != tc.want {
			t.Errorf("Plain(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
