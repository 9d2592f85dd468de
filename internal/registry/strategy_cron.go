package registry

// Validation of CronJob schedules: the standard five-field cron syntax
// ("*/5 * * * 1-5", month and weekday names, "?"), and the descriptors
// @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly and
// "@every <duration>".

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// cronField describes one of the five fields of a schedule.
type cronField struct {
	name     string
	min, max int
	names    map[string]int
}

var cronFields = []cronField{
	{name: "minute", min: 0, max: 59},
	{name: "hour", min: 0, max: 23},
	{name: "day of month", min: 1, max: 31},
	{name: "month", min: 1, max: 12, names: map[string]int{
		"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
		"jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
	}},
	{name: "day of week", min: 0, max: 6, names: map[string]int{
		"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6,
	}},
}

// hasCronTimeZone reports whether a schedule starts with TZ= or CRON_TZ=.
func hasCronTimeZone(schedule string) bool {
	s := strings.TrimSpace(schedule)
	return strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ=")
}

// validateCronSchedule returns why a schedule cannot be parsed, or nil.
func validateCronSchedule(schedule string) error {
	s := strings.TrimSpace(schedule)
	if s == "" {
		return fmt.Errorf("empty spec string")
	}
	if strings.HasPrefix(s, "@") {
		switch s {
		case "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly":
			return nil
		}
		if d, ok := strings.CutPrefix(s, "@every "); ok {
			if _, err := time.ParseDuration(strings.TrimSpace(d)); err != nil {
				return fmt.Errorf("failed to parse duration %s: %v", s, err)
			}
			return nil
		}
		return fmt.Errorf("unrecognized descriptor: %s", s)
	}
	parts := strings.Fields(s)
	if len(parts) != len(cronFields) {
		return fmt.Errorf("expected exactly %d fields, found %d: %s", len(cronFields), len(parts), s)
	}
	for i, part := range parts {
		if err := cronFields[i].validate(part); err != nil {
			return err
		}
	}
	return nil
}

// validate checks one field: a comma-separated list of "*", "?", a value
// or a range, each with an optional "/step".
func (f cronField) validate(expr string) error {
	for _, item := range strings.Split(expr, ",") {
		rng, step, stepped := strings.Cut(item, "/")
		if stepped {
			n, err := strconv.Atoi(step)
			if err != nil || n <= 0 {
				return fmt.Errorf("invalid step %q in %s field %q", step, f.name, expr)
			}
		}
		if rng == "*" || rng == "?" {
			continue
		}
		lo, hi, isRange := strings.Cut(rng, "-")
		a, err := f.value(lo)
		if err != nil {
			return err
		}
		if !isRange {
			continue
		}
		b, err := f.value(hi)
		if err != nil {
			return err
		}
		if a > b {
			return fmt.Errorf("beginning of range (%d) beyond end of range (%d): %s", a, b, expr)
		}
	}
	return nil
}

// value reads a number or a name of the field and checks its bounds.
func (f cronField) value(s string) (int, error) {
	if n, ok := f.names[strings.ToLower(s)]; ok {
		return n, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("failed to parse int from %s: %v", s, err)
	}
	if n < f.min || n > f.max {
		return 0, fmt.Errorf("%s value (%d) out of range [%d, %d]", f.name, n, f.min, f.max)
	}
	return n, nil
}
