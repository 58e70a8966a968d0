// Package holder tells whether the process that a lock names is gone: a
// process of this host that no longer exists, or whose pid now belongs
// to a process started after the lock was taken.
package holder

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ckptdev/ckpt/store"
)

// Local reports whether o names a process of this host, whose life Gone
// can tell.
func Local(o store.Owner) bool {
	host, err := os.Hostname()
	return err == nil && o.PID > 0 && o.Host == host
}

// Gone reports whether o was a process of this host that has exited: no
// process has its pid, or the one that has started at another time than
// o records. False means alive, or unknown: a process of another host, or
// one whose pid exists and may be it.
func Gone(o store.Owner) bool {
	if !Local(o) {
		return false
	}
	if o.PID == os.Getpid() {
		return false // this process: alive, whatever its lock
	}
	if errors.Is(syscall.Kill(o.PID, 0), syscall.ESRCH) {
		return true
	}
	// The pid exists. It is another process if it started at another
	// time than the holder did (the pid was reused), where both are known.
	if o.Start.IsZero() {
		return false
	}
	start, ok := startTime(o.PID)
	return ok && (start.Sub(o.Start) > time.Second || o.Start.Sub(start) > time.Second)
}

// Stamp returns o with its Start filled in if o is this process and the
// system tells its start time.
func Stamp(o store.Owner) store.Owner {
	if o.PID == os.Getpid() && o.Start.IsZero() {
		if t, ok := startTime(o.PID); ok {
			o.Start = t.UTC()
		}
	}
	return o
}

// startTime returns when process pid started, from Linux's /proc; false
// where it cannot be read.
func startTime(pid int) (time.Time, bool) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return time.Time{}, false
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// the fields after its closing parenthesis start with field 3.
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return time.Time{}, false
	}
	f := strings.Fields(string(stat[i+1:]))
	const startField = 22 - 3 // starttime, in clock ticks after boot
	if len(f) <= startField {
		return time.Time{}, false
	}
	ticks, err := strconv.ParseUint(f[startField], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	boot, ok := bootTime()
	if !ok {
		return time.Time{}, false
	}
	// USER_HZ is 100 on every Linux architecture Go supports.
	const userHZ = 100
	return boot.Add(time.Duration(ticks) * time.Second / userHZ), true
}

func bootTime() (time.Time, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			s, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, false
			}
			return time.Unix(s, 0), true
		}
	}
	return time.Time{}, false
}
