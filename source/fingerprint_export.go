package source

// FingerprintFile fingerprints one input file as the file sources do, for
// sources of other formats that live elsewhere.
func FingerprintFile(path string) (Fingerprint, error) { return fingerprint(path) }

// SameInput returns an error matching ErrInputChanged, saying how, unless
// the fingerprints now match those a checkpoint recorded.
func SameInput(now, then []Fingerprint) error { return sameInput(now, then) }
