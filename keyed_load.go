package ckpt

import (
	"errors"
	"runtime"
	"sync"
	"unicode/utf8"
)

// A resume of a state that fits in memory decodes every entry of its runs
// into the table: millions of keys and values. The merge of the runs,
// the decoding and the table's inserts run on different goroutines, so
// that a restore uses the machine's cores as the full-state load (which
// reads chunks ahead while it decodes) does.

// loadBatch is how many entries a batch of a restore carries.
const loadBatch = 4096

// rawBatch is entries of the merged runs, encoded: ends holds, for each
// entry, the end of its key and of its value in buf.
type rawBatch struct {
	buf  []byte
	ends []int
}

// decodeRuns calls fn with the live entries of the merge of runs,
// decoded, a batch at a time, in no particular order (each key comes
// once; kind is not set). fn runs in the caller's goroutine. The first
// error stops everything and is returned.
func (k *Keyed[K, V]) decodeRuns(runs []*run, fn func([]frozenEntry[K, V])) error {
	raws := make(chan rawBatch, 4)
	decoded := make(chan []frozenEntry[K, V], 4)
	free := make(chan rawBatch, 8)
	stop := make(chan struct{})
	var once sync.Once
	var firstErr error
	fail := func(err error) {
		once.Do(func() {
			firstErr = err
			close(stop)
		})
	}
	errStop := errors.New("stop")
	go func() {
		defer close(raws)
		var b rawBatch
		send := func() bool {
			select {
			case raws <- b:
			case <-stop:
				return false
			}
			select {
			case b = <-free:
				b.buf, b.ends = b.buf[:0], b.ends[:0]
			default:
				b = rawBatch{}
			}
			return true
		}
		err := k.scan(runs, func(key, val []byte) error {
			b.buf = append(b.buf, key...)
			b.ends = append(b.ends, len(b.buf))
			b.buf = append(b.buf, val...)
			b.ends = append(b.ends, len(b.buf))
			if len(b.ends) == 2*loadBatch && !send() {
				return errStop
			}
			return nil
		})
		if err == nil && len(b.ends) > 0 {
			send()
		}
		if err != nil && err != errStop {
			fail(err)
		}
	}()
	var wg sync.WaitGroup
	for range min(max(runtime.GOMAXPROCS(0)-1, 1), 4) {
		wg.Go(func() {
			for b := range raws {
				out := make([]frozenEntry[K, V], 0, len(b.ends)/2)
				start := 0
				for i := 0; i < len(b.ends); i += 2 {
					key, val := b.buf[start:b.ends[i]], b.buf[b.ends[i]:b.ends[i+1]]
					start = b.ends[i+1]
					kd, err := decodeKey[K](k.kk, key)
					if err != nil {
						fail(err)
						return
					}
					v, err := k.decode(val)
					if err != nil {
						fail(err)
						return
					}
					out = append(out, frozenEntry[K, V]{key: kd, v: v})
				}
				select {
				case free <- b:
				default:
				}
				select {
				case decoded <- out:
				case <-stop:
					return
				}
			}
		})
	}
	go func() {
		wg.Wait()
		close(decoded)
	}()
	for out := range decoded {
		fn(out)
	}
	return firstErr
}

// plainJSONString returns the string that b, a JSON string with nothing
// to unescape, decodes to; ok is false for any other b, which
// encoding/json decodes. Most values of a state of strings are plain.
func plainJSONString(b []byte) (s string, ok bool) {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return "", false
	}
	b = b[1 : len(b)-1]
	high := false
	for _, c := range b {
		switch {
		case c < 0x20 || c == '"' || c == '\\':
			return "", false
		case c >= utf8.RuneSelf:
			high = true
		}
	}
	if high && !utf8.Valid(b) {
		return "", false // encoding/json replaces what is not UTF-8
	}
	return string(b), true
}
