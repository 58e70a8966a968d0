// Package keyedcrash holds the crash tests of keyed state: real processes
// killed with SIGKILL at random moments while they update keyed state and
// checkpoint it, on every store. It has no code of its own.
package keyedcrash
