package asset

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
)

// Partitions divide an asset into parts that are materialized, tracked and
// resumed separately: a static list of keys, or time windows (daily,
// hourly). Each partition has its own status and history. Assets with the
// same Partitions (the same value, or equal definitions) depend on each
// other partition by partition.
type Partitions struct {
	static []string
	index  map[string]int

	// Time windows: [start + i*step, start + (i+1)*step), up to end (or
	// the last window complete at the time asked, when end is zero).
	unit   timeUnit
	start  time.Time
	end    time.Time
	layout string
}

type timeUnit int

const (
	noTime timeUnit = iota
	hourly
	daily
)

// Partition key layouts of time windows: the start of the window.
const (
	DailyLayout  = "2006-01-02"
	HourlyLayout = "2006-01-02-15:04"
)

// StaticPartitions returns partitions with the given keys, in this order.
// A key is 1 to 128 printable characters without ',' or "...", which
// separate keys and ranges in selections; bad or repeated keys are
// reported by Graph.Validate.
func StaticPartitions(keys ...string) *Partitions {
	p := &Partitions{static: slices.Clone(keys), index: make(map[string]int, len(keys))}
	for i, k := range keys {
		if _, dup := p.index[k]; !dup {
			p.index[k] = i
		}
	}
	return p
}

// DailyPartitions returns one partition per day from start's day on, in
// start's location; the key is the day ("2026-01-02"). Without Until, the
// partitions are the days complete at the time asked.
func DailyPartitions(start time.Time) *Partitions {
	y, m, d := start.Date()
	return &Partitions{unit: daily, start: time.Date(y, m, d, 0, 0, 0, 0, start.Location()), layout: DailyLayout}
}

// HourlyPartitions returns one partition per hour from start's hour on;
// the key is the hour's start ("2026-01-02-15:00"). Use UTC: an hour
// repeated by a daylight saving change would give two windows one key.
func HourlyPartitions(start time.Time) *Partitions {
	return &Partitions{unit: hourly, start: start.Truncate(time.Hour), layout: HourlyLayout}
}

// Until returns a copy of time partitions that ends at end (exclusive):
// the last window is the last one that ends at or before it.
func (p *Partitions) Until(end time.Time) *Partitions {
	q := *p
	q.end = end
	return &q
}

func (p *Partitions) validate() error {
	if p.unit != noTime {
		if p.start.IsZero() {
			return errors.New("time partitions without a start")
		}
		return nil
	}
	if len(p.static) == 0 {
		return errors.New("static partitions without keys")
	}
	if len(p.index) != len(p.static) {
		return errors.New("static partitions with a repeated key")
	}
	for _, k := range p.static {
		if err := validPartitionKey(k); err != nil {
			return err
		}
	}
	return nil
}

func validPartitionKey(k string) error {
	if k == "" || len(k) > 128 {
		return fmt.Errorf("partition key %q: must be 1 to 128 characters", k)
	}
	if strings.Contains(k, ",") || strings.Contains(k, "...") {
		return fmt.Errorf("partition key %q: must not contain ',' or '...'", k)
	}
	for _, r := range k {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return fmt.Errorf("partition key %q: only printable characters, no spaces", k)
		}
	}
	return nil
}

// String describes the partitions ("static: a, b, c", "daily from
// 2026-01-01").
func (p *Partitions) String() string {
	if p.unit == noTime {
		if len(p.static) <= 5 {
			return "static: " + strings.Join(p.static, ", ")
		}
		return fmt.Sprintf("static: %s, ... (%d keys)", strings.Join(p.static[:3], ", "), len(p.static))
	}
	kind := "daily"
	if p.unit == hourly {
		kind = "hourly"
	}
	s := kind + " from " + p.start.Format(p.layout)
	if !p.end.IsZero() {
		s += " until " + p.end.Format(p.layout)
	}
	return s
}

// same reports whether p and q define the same partitions.
func (p *Partitions) same(q *Partitions) bool {
	if p == q {
		return true
	}
	if p == nil || q == nil || p.unit != q.unit {
		return false
	}
	if p.unit == noTime {
		return slices.Equal(p.static, q.static)
	}
	return p.start.Equal(q.start) && p.end.Equal(q.end) && p.start.Location().String() == q.start.Location().String()
}

func (p *Partitions) next(t time.Time, n int) time.Time {
	if p.unit == daily {
		return t.AddDate(0, 0, n)
	}
	return t.Add(time.Duration(n) * time.Hour)
}

// limit is the end of the last window: end, or now for open partitions.
func (p *Partitions) limit(now time.Time) time.Time {
	if !p.end.IsZero() {
		return p.end
	}
	return now
}

// Keys returns every partition key, in order. For time windows, now
// decides which windows are complete when no end was set.
func (p *Partitions) Keys(now time.Time) []string {
	if p.unit == noTime {
		return slices.Clone(p.static)
	}
	lim := p.limit(now)
	var keys []string
	for t := p.start; !p.next(t, 1).After(lim); t = p.next(t, 1) {
		keys = append(keys, t.Format(p.layout))
	}
	return keys
}

// Has reports whether key is one of the partitions at now.
func (p *Partitions) Has(key string, now time.Time) bool {
	if p.unit == noTime {
		_, ok := p.index[key]
		return ok
	}
	start, end, err := p.Window(key)
	return err == nil && !start.Before(p.start) && !end.After(p.limit(now))
}

// Window returns the time window [start, end) of a time partition key.
func (p *Partitions) Window(key string) (start, end time.Time, err error) {
	if p.unit == noTime {
		return time.Time{}, time.Time{}, fmt.Errorf("partition %q: static partitions have no time window", key)
	}
	t, err := time.ParseInLocation(p.layout, key, p.start.Location())
	if err != nil || t.Format(p.layout) != key {
		return time.Time{}, time.Time{}, fmt.Errorf("partition %q is not a %s key", key, p.layout)
	}
	if p.unit == hourly && !t.Truncate(time.Hour).Equal(t) || t.Before(p.start) {
		return time.Time{}, time.Time{}, fmt.Errorf("partition %q is not one of %s", key, p)
	}
	return t, p.next(t, 1), nil
}

// Range returns the keys from first to last, both included, in order.
func (p *Partitions) Range(first, last string, now time.Time) ([]string, error) {
	if !p.Has(first, now) {
		return nil, fmt.Errorf("%w: %q is not a partition (%s)", ErrSelection, first, p)
	}
	if !p.Has(last, now) {
		return nil, fmt.Errorf("%w: %q is not a partition (%s)", ErrSelection, last, p)
	}
	if p.unit == noTime {
		i, j := p.index[first], p.index[last]
		if i > j {
			return nil, fmt.Errorf("%w: range %s...%s is backwards", ErrSelection, first, last)
		}
		return slices.Clone(p.static[i : j+1]), nil
	}
	s, _, _ := p.Window(first)
	e, _, _ := p.Window(last)
	if s.After(e) {
		return nil, fmt.Errorf("%w: range %s...%s is backwards", ErrSelection, first, last)
	}
	var keys []string
	for t := s; !t.After(e); t = p.next(t, 1) {
		keys = append(keys, t.Format(p.layout))
	}
	return keys, nil
}
