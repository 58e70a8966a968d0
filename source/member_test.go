package source_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"

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

// bgzf compresses text as bgzip does: members of at most 64 KiB of text,
// each with the BC extra field that gives its size, and an empty member at
// the end.
func bgzf(t *testing.T, text string) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, p := range append(parts(text, len(text)/(60<<10)+1), "") {
		var m bytes.Buffer
		w := gzip.NewWriter(&m)
		w.Header.Extra = []byte{'B', 'C', 2, 0, 0, 0} // BSIZE-1, filled in below
		w.Write([]byte(p))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		mb := m.Bytes()
		size := len(mb) - 1
		mb[16], mb[17] = byte(size), byte(size>>8)
		b.Write(mb)
	}
	return b.Bytes()
}

// pzstd compresses text as pzstd does: frames, each after a skippable
// frame that gives its size.
func pzstd(t *testing.T, text string) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, p := range parts(text, 30) {
		f := zstded(t, p)
		b.Write([]byte{0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0})
		b.Write([]byte{byte(len(f)), byte(len(f) >> 8), byte(len(f) >> 16), byte(len(f) >> 24)})
		b.Write(f)
	}
	return b.Bytes()
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
		"in.csv.gz":     gzipped(t, parts(text, 40)...),
		"in.csv.zst":    zstded(t, parts(text, 40)...),
		"bgzf.csv.gz":   bgzf(t, text),
		"pzstd.csv.zst": pzstd(t, text),
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
				if p.MemberOffset < last.MemberOffset || p.MemberStart > p.Offset || p.MemberStart < last.MemberStart {
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

// FuzzCompressedMembers compresses arbitrary text as gzip members or zstd
// frames cut at arbitrary places (empty ones too), and checks that it
// reads as the plain text does and resumes at every line from the member
// its position names; and reads the fuzzed bytes themselves as a .gz and
// a .zst file, which may fail but must end.
func FuzzCompressedMembers(f *testing.F) {
	for _, s := range []string{"", "a\n", "a\nb\nc\n", "x\r\ny", "\n\n\n\n\n\n"} {
		f.Add([]byte(s), uint64(0x0103), false)
		f.Add([]byte(s), uint64(0x050201), true)
	}
	f.Add([]byte("\x28\xb5\x2f\xfd\x00\x00\x01\x00\x00"), uint64(0), true)
	f.Fuzz(func(t *testing.T, data []byte, cuts uint64, zst bool) {
		var ps []string
		rest := string(data)
		for c := cuts; c != 0 || len(rest) > 0; c >>= 8 {
			n := min(len(rest), int(c&0xff))
			if c == 0 {
				n = len(rest)
			}
			ps = append(ps, rest[:n])
			rest = rest[n:]
		}
		dir := t.TempDir()
		plain := filepath.Join(dir, "in.txt")
		os.WriteFile(plain, data, 0o644)
		name, b := "in.txt.gz", gzipped(t, ps...)
		if zst {
			name, b = "in.txt.zst", zstded(t, ps...)
		}
		path := filepath.Join(dir, name)
		os.WriteFile(path, b, 0o644)
		for _, n := range []string{"raw.gz", "raw.zst"} {
			p := filepath.Join(dir, n)
			os.WriteFile(p, data, 0o644)
			readLines([]string{p}, nil)
		}
		want, werr := readLines([]string{plain}, nil)
		got, err := readLines([]string{path}, nil)
		if werr != nil || err != nil {
			if !errors.Is(werr, source.ErrNotUTF8) || !errors.Is(err, source.ErrNotUTF8) {
				t.Fatalf("plain: %v; compressed: %v", werr, err)
			}
			return
		}
		if len(got.events) != len(want.events) {
			t.Fatalf("%d lines, plain %d", len(got.events), len(want.events))
		}
		for i := range got.events {
			g, w := got.events[i], want.events[i]
			g.File, w.File = "", ""
			if g.String() != w.String() {
				t.Fatalf("line %d: %s, plain %s", i, g, w)
			}
		}
		checkResumeAt(t, got, func(pos json.RawMessage) (stream, error) { return readLines([]string{path}, pos) }, 20)
	})
}

// A compressed file whose name does not say so is refused, saying what to
// name it, not read as text.
func TestCompressedWithoutItsName(t *testing.T) {
	dir := t.TempDir()
	for name, b := range map[string][]byte{"data.csv": gzipped(t, "a,b\n1,2\n"), "data.jsonl": zstded(t, "{}\n")} {
		path := filepath.Join(dir, name)
		os.WriteFile(path, b, 0o644)
		_, err := readLines([]string{path}, nil)
		if !errors.Is(err, source.ErrNotUTF8) || !strings.Contains(err.Error(), "name it "+path+".") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
