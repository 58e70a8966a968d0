package records

import "testing"

// special must flag a word exactly when one of its bytes needs a look:
// every byte value in every position, next to every other byte value.
func TestSpecialIsExact(t *testing.T) {
	needs := func(c byte) bool { return c < 0x20 || c == '"' || c == '\\' || c >= 0x80 }
	for pos := 0; pos < 8; pos++ {
		for a := 0; a < 256; a++ {
			for b := 0; b < 256; b++ {
				x := uint64(0x4141414141414141)
				x &^= 0xff << (8 * pos)
				x |= uint64(a) << (8 * pos)
				other := (pos + 1 + b%7) % 8
				x &^= 0xff << (8 * other)
				x |= uint64(b) << (8 * other)
				want := needs(byte(a)) || needs(byte(b))
				if got := special(x); got != want {
					t.Fatalf("special(%#016x) = %v, want %v", x, got, want)
				}
			}
		}
	}
}
