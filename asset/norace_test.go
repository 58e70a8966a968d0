//go:build !race

package asset_test

const raceEnabled = false
