package crashtest

import (
	"reflect"
	"testing"
)

func TestDiff(t *testing.T) {
	file := func(s string) entry { return entry{data: []byte(s)} }
	for _, tc := range []struct {
		name      string
		want, got result
		diff      *Difference
	}{
		{"equal", result{"a": file("x\ny\n")}, result{"a": file("x\ny\n")}, nil},
		{"both missing", result{"a": {missing: true}}, result{"a": {missing: true}}, nil},
		{"missing", result{"a": file("x\n")}, result{"a": {missing: true}},
			&Difference{Path: "a", Reason: "missing", WantSize: 2}},
		{"unexpected", result{}, result{"b": file("zz")},
			&Difference{Path: "b", Reason: "unexpected", GotSize: 2}},
		{"content", result{"a": file("1\n2\n3\n4\n5\n6\n")}, result{"a": file("1\n2\n3\n4\n4\n5\n6\n")},
			&Difference{Path: "a", Reason: "content", Offset: 8, Line: 5,
				Want: []string{"3", "4", "5", "6"}, Got: []string{"3", "4", "4", "5", "6"}, WantSize: 12, GotSize: 14}},
		{"truncated", result{"a": file("1\n2\n")}, result{"a": file("1\n")},
			&Difference{Path: "a", Reason: "content", Offset: 2, Line: 2,
				Want: []string{"1", "2"}, Got: []string{"1", "(end of file)"}, WantSize: 4, GotSize: 2}},
		{"empty", result{"a": file("1\n")}, result{"a": file("")},
			&Difference{Path: "a", Reason: "content", Offset: 0, Line: 1,
				Want: []string{"1"}, Got: []string{"(empty)"}, WantSize: 2, GotSize: 0}},
		{"first file in name order", result{"a": file("x"), "b": file("y")}, result{"a": file("x"), "b": file("z")},
			&Difference{Path: "b", Reason: "content", Offset: 0, Line: 1, Want: []string{"y"}, Got: []string{"z"}, WantSize: 1, GotSize: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := diff(tc.want, tc.got); !reflect.DeepEqual(got, tc.diff) {
				t.Errorf("diff = %#v\nwant   %#v", got, tc.diff)
			}
		})
	}
}
