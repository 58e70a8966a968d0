package source_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt/source"
)

// memberText is CSV text of n records that compresses little, so that a
// compressed file of it is large enough to have bytes the fingerprint's
// head, tail and samples do not cover.
func memberText(n int) string {
	var b strings.Builder
	b.WriteString("id,hash\n")
	for i := range n {
		sum := sha256.Sum256([]byte(fmt.Sprint(i)))
		fmt.Fprintf(&b, "%d,%s\n", i, hex.EncodeToString(sum[:]))
	}
	return b.String()
}

// parts cuts text into n parts at line ends, and one empty part, as a
// checkpoint that wrote nothing makes.
func parts(text string, n int) []string {
	var out []string
	for len(text) > 0 {
		cut := min(len(text), len(text)/n+1)
		if i := strings.IndexByte(text[cut-1:], '\n'); i >= 0 {
			cut += i
		} else {
			cut = len(text)
		}
		out = append(out, text[:cut])
		text = text[cut:]
		if len(out) == 3 {
			out = append(out, "")
		}
	}
	return out
}

// A multi-member gzip and a multi-frame zstd file record in their
// positions the member that holds them, and a resume at any position
// decompresses from that member only: it gives the same records and
// positions as an uninterrupted read, and does so even when a member
// before it is damaged, which a resume from the file's start (a position
// recorded before members were) cannot.
func TestResumeAtMember(t *testing.T) {
	text := memberText(12000)
	for name, b := range map[string][]byte{
		"in.csv.gz":  gzipped(t, parts(text, 40)...),
		"in.csv.zst": zstded(t, parts(text, 40)...),
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), name)
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			paths := []string{path}
			s := mustReadCSV(t, paths, source.CSVOptions{})
			checkResumeAt(t, s, func(pos json.RawMessage) (stream, error) { return readCSV(paths, pos, source.CSVOptions{}) }, 60)

			// Positions name later members as the read goes on.
			var last source.Position
			members := map[int64]bool{}
			for _, raw := range s.pos {
				var p source.Position
				if err := json.Unmarshal(raw, &p); err != nil {
					t.Fatal(err)
				}
				if p.MemberOffset < last.MemberOffset || p.MemberStart > p.Offset || (p.MemberOffset == 0) != (p.MemberStart == 0) {
					t.Fatalf("position %s after %+v", raw, last)
				}
				members[p.MemberOffset] = true
				last = p
			}
			if len(members) < 30 {
				t.Fatalf("positions name %d members of about 40", len(members))
			}

			// Damage a byte of an early member that the fingerprint does
			// not read (between its head and first sample, which are 64
			// KiB and 4 KiB long), keeping the file's size and time.
			fi, _ := os.Stat(path)
			damage := int64(64<<10 + 4<<10 + 1000)
			if fi.Size() < 3*damage {
				t.Fatalf("the compressed file has %d bytes, too few", fi.Size())
			}
			late := s.pos[len(s.pos)*9/10]
			var p source.Position
			json.Unmarshal(late, &p)
			if p.MemberOffset <= damage {
				t.Fatalf("the position at 90 %% is in the member at %d, not after byte %d", p.MemberOffset, damage)
			}
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			one := []byte{0}
			f.ReadAt(one, damage)
			one[0] ^= 0xff
			f.WriteAt(one, damage)
			f.Close()
			os.Chtimes(path, fi.ModTime(), fi.ModTime())

			rest, err := readCSV(paths, late, source.CSVOptions{})
			if err != nil {
				t.Fatalf("resume at a member after the damaged one: %v", err)
			}
			if len(rest.events) != len(s.events)-len(s.pos)*9/10 {
				t.Fatalf("resume at 90 %%: %d records, want %d", len(rest.events), len(s.events)-len(s.pos)*9/10)
			}
			// The position as it was recorded before members were: the
			// file is decompressed from its start, through the damage.
			p.MemberOffset, p.MemberStart = 0, 0
			old, _ := json.Marshal(p)
			if _, err := readCSV(paths, old, source.CSVOptions{}); err == nil || !strings.Contains(err.Error(), name) {
				t.Fatalf("resume from the file's start through a damaged member: %v, want an error naming %s", err, name)
			}
		})
	}
}

// A position recorded before members were resumes in a file of several
// members, decompressing it from its start, and goes on to record
// members.
func TestResumeWithoutMember(t *testing.T) {
	text := memberText(3000)
	for name, b := range map[string][]byte{
		"in.csv.gz":  gzipped(t, parts(text, 10)...),
		"in.csv.zst": zstded(t, parts(text, 10)...),
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), name)
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			paths := []string{path}
			s := mustReadCSV(t, paths, source.CSVOptions{})
			for k := 0; k < len(s.pos); k += 97 {
				var p source.Position
				json.Unmarshal(s.pos[k], &p)
				p.MemberOffset, p.MemberStart = 0, 0
				old, _ := json.Marshal(p)
				rest, err := readCSV(paths, old, source.CSVOptions{})
				if err != nil {
					t.Fatalf("resume after %d records at %s: %v", k, old, err)
				}
				if len(rest.events) != len(s.events)-k || (k < len(s.events) && rest.events[0].String() != s.events[k].String()) {
					t.Fatalf("resume after %d records at %s: %d records", k, old, len(rest.events))
				}
				for j := 1; j < len(rest.pos); j++ {
					if string(rest.pos[j]) != string(s.pos[k+j]) {
						t.Fatalf("resume after %d records: position after %d more is %s, uninterrupted %s", k, j, rest.pos[j], s.pos[k+j])
					}
				}
			}
			// A member offset that is no member start is refused, naming
			// the file and the offset.
			var p source.Position
			json.Unmarshal(s.pos[len(s.pos)/2], &p)
			p.MemberOffset++
			bad, _ := json.Marshal(p)
			if _, err := readCSV(paths, bad, source.CSVOptions{}); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("byte %d", p.MemberOffset)) {
				t.Fatalf("resume at a member offset that is none: %v", err)
			}
		})
	}
}
