package natsstream

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseAddress(t *testing.T) {
	for _, tc := range []struct {
		in                      string
		server, stream, display string
		subjects                []string
		prefix                  string
	}{
		{in: "nats://127.0.0.1:4222/ORDERS", server: "nats://127.0.0.1:4222", stream: "ORDERS", display: "nats://127.0.0.1:4222/ORDERS"},
		{in: "nats://h:1/S?subject=orders.>&subject=refunds.*", server: "nats://h:1", stream: "S", display: "nats://h:1/S", subjects: []string{"orders.>", "refunds.*"}},
		{in: "nats://u:secret@h:1/S?prefix=copy.", server: "nats://u:secret@h:1", stream: "S", display: "nats://u@h:1/S", prefix: "copy."},
	} {
		a, err := ParseAddress(tc.in)
		if err != nil {
			t.Errorf("ParseAddress(%q): %v", tc.in, err)
			continue
		}
		if a.Server != tc.server || a.Stream != tc.stream || a.Display != tc.display || !slices.Equal(a.Subjects, tc.subjects) || a.Prefix != tc.prefix {
			t.Errorf("ParseAddress(%q) = %+v", tc.in, a)
		}
	}
	for _, bad := range []string{"nats://h:1/", "nats://h:1/A.B", "http://h/S", "nats:///S", "nats://h/S?table=x", "nats://u:secret@h:1/S?nope=1"} {
		_, err := ParseAddress(bad)
		if !errors.Is(err, ErrBadAddress) {
			t.Errorf("ParseAddress(%q): %v, want ErrBadAddress", bad, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseAddress(%q): the error shows the password: %v", bad, err)
		}
	}
}
