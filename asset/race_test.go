//go:build race

package asset_test

// raceEnabled: the race detector slows the pure-Go SQLite by an order of
// magnitude, so the largest tests run smaller under it by default.
const raceEnabled = true
