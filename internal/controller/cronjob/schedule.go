package cronjob

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Schedule is a parsed cron schedule: the standard five fields (minute,
// hour, day of month, month, day of week) with lists, ranges, steps and
// month and weekday names, the macros @yearly, @annually, @monthly,
// @weekly, @daily, @midnight and @hourly, and "@every <duration>".
//
// As in the cron Kubernetes uses, when both day fields are restricted a
// day matches if either matches; when one of them is "*" (or "?") both
// must match.
type Schedule struct {
	minute, hour, dom, month, dow uint64 // bit i set: value i allowed
	domAny, dowAny                bool   // the field was "*" or "?"
	every                         time.Duration
}

type field struct {
	name     string
	min, max int
	names    map[string]int
}

// fields describes the five fields in order.
func fields() [5]field {
	return [5]field{
		{name: "minute", min: 0, max: 59},
		{name: "hour", min: 0, max: 23},
		{name: "day of month", min: 1, max: 31},
		{name: "month", min: 1, max: 12, names: map[string]int{
			"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
			"jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12}},
		{name: "day of week", min: 0, max: 6, names: map[string]int{
			"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}},
	}
}

// macro returns the five fields a descriptor stands for.
func macro(name string) (string, bool) {
	switch strings.ToLower(name) {
	case "@yearly", "@annually":
		return "0 0 1 1 *", true
	case "@monthly":
		return "0 0 1 * *", true
	case "@weekly":
		return "0 0 * * 0", true
	case "@daily", "@midnight":
		return "0 0 * * *", true
	case "@hourly":
		return "0 * * * *", true
	}
	return "", false
}

// ParseSchedule parses a cron schedule.
func ParseSchedule(spec string) (*Schedule, error) {
	s := strings.TrimSpace(spec)
	if s == "" {
		return nil, fmt.Errorf("empty schedule")
	}
	if strings.HasPrefix(s, "@") {
		if d, ok := strings.CutPrefix(s, "@every "); ok {
			dur, err := time.ParseDuration(strings.TrimSpace(d))
			if err != nil {
				return nil, fmt.Errorf("schedule %q: %w", spec, err)
			}
			if dur < time.Second {
				dur = time.Second
			}
			return &Schedule{every: dur.Truncate(time.Second)}, nil
		}
		m, ok := macro(s)
		if !ok {
			return nil, fmt.Errorf("schedule %q: unknown descriptor", spec)
		}
		s = m
	}
	parts := strings.Fields(s)
	if len(parts) != 5 {
		return nil, fmt.Errorf("schedule %q: want 5 fields, found %d", spec, len(parts))
	}
	out := &Schedule{}
	var err error
	fs := fields()
	for i, dst := range []*uint64{&out.minute, &out.hour, &out.dom, &out.month, &out.dow} {
		if *dst, err = fs[i].parse(parts[i]); err != nil {
			return nil, fmt.Errorf("schedule %q: %w", spec, err)
		}
	}
	out.domAny = isAny(parts[2])
	out.dowAny = isAny(parts[4])
	return out, nil
}

func isAny(expr string) bool { return expr == "*" || expr == "?" || expr == "*/1" }

// parse reads a field: a comma-separated list of "*", "?", a value or a
// range a-b, each with an optional "/step"; "a/step" means a to the end.
func (f field) parse(expr string) (uint64, error) {
	var bits uint64
	for _, item := range strings.Split(expr, ",") {
		rng, stepStr, stepped := strings.Cut(item, "/")
		step := 1
		if stepped {
			n, err := strconv.Atoi(stepStr)
			if err != nil || n <= 0 {
				return 0, fmt.Errorf("invalid step %q in %s field %q", stepStr, f.name, expr)
			}
			step = n
		}
		var lo, hi int
		switch {
		case rng == "*" || rng == "?":
			lo, hi = f.min, f.max
		default:
			a, b, isRange := strings.Cut(rng, "-")
			var err error
			if lo, err = f.value(a); err != nil {
				return 0, fmt.Errorf("%w in %q", err, expr)
			}
			hi = lo
			if isRange {
				if hi, err = f.value(b); err != nil {
					return 0, fmt.Errorf("%w in %q", err, expr)
				}
				if lo > hi {
					return 0, fmt.Errorf("%s range %q runs backwards", f.name, rng)
				}
			} else if stepped {
				hi = f.max
			}
		}
		for v := lo; v <= hi; v += step {
			bits |= 1 << uint(v)
		}
	}
	return bits, nil
}

func (f field) value(s string) (int, error) {
	if n, ok := f.names[strings.ToLower(s)]; ok {
		return n, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("invalid %s value %q", f.name, s)
	}
	if n < f.min || n > f.max {
		return 0, fmt.Errorf("%s value %d out of range [%d, %d]", f.name, n, f.min, f.max)
	}
	return n, nil
}

func has(bits uint64, v int) bool { return bits&(1<<uint(v)) != 0 }

// searchLimit bounds the search for the next activation; a schedule that
// never fires (the 30th of February) yields the zero time.
const searchLimit = 5 * 366 * 24 * time.Hour

// Next returns the first activation strictly after t, in t's location,
// or the zero time if there is none within five years.
func (s *Schedule) Next(t time.Time) time.Time {
	if s.every > 0 {
		return t.Truncate(time.Second).Add(s.every)
	}
	loc := t.Location()
	// Whole minutes only: the first candidate is the next minute.
	t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), 0, 0, loc).Add(time.Minute)
	limit := t.Add(searchLimit)
	for t.Before(limit) {
		switch {
		case !has(s.month, int(t.Month())):
			t = advance(t, time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, loc), time.Hour)
		case !s.dayMatches(t):
			t = advance(t, time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, loc), time.Hour)
		case !has(s.hour, t.Hour()):
			t = advance(t, time.Date(t.Year(), t.Month(), t.Day(), t.Hour()+1, 0, 0, 0, loc), time.Minute)
		case !has(s.minute, t.Minute()):
			t = t.Add(time.Minute)
		default:
			return t
		}
	}
	return time.Time{}
}

// advance returns next if it lies after t; around a daylight-saving
// change a wall-clock computation can land at or before t, and then it
// moves on by step instead.
func advance(t, next time.Time, step time.Duration) time.Time {
	if next.After(t) {
		return next
	}
	return t.Add(step)
}

func (s *Schedule) dayMatches(t time.Time) bool {
	d, w := has(s.dom, t.Day()), has(s.dow, int(t.Weekday()))
	if s.domAny || s.dowAny {
		return d && w
	}
	return d || w
}
