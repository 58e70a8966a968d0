package source

// SetInitialBuffer sets the size of the buffer new readers start with and
// returns a function that restores the previous size. Tests that call it
// must not run in parallel with other tests that open readers.
func SetInitialBuffer(n int) (restore func()) {
	old := initialBuffer
	initialBuffer = n
	return func() { initialBuffer = old }
}

// SetMaxRecord sets the longest record readers accept, as SetInitialBuffer.
func SetMaxRecord(n int) (restore func()) {
	old := maxRecord
	maxRecord = n
	return func() { maxRecord = old }
}
