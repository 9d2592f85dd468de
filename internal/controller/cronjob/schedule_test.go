package cronjob

import (
	"testing"
	"time"
)

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return loc
}

func TestScheduleNext(t *testing.T) {
	// Thursday 15 January 2026, 10:07:30 UTC.
	from := time.Date(2026, 1, 15, 10, 7, 30, 0, time.UTC)
	utc := func(y int, mo time.Month, d, h, mi int) time.Time { return time.Date(y, mo, d, h, mi, 0, 0, time.UTC) }
	for _, tc := range []struct {
		spec string
		want time.Time
	}{
		{"* * * * *", utc(2026, 1, 15, 10, 8)},
		{"? ? ? ? ?", utc(2026, 1, 15, 10, 8)},
		{"*/15 * * * *", utc(2026, 1, 15, 10, 15)},
		{"5/20 * * * *", utc(2026, 1, 15, 10, 25)},
		{"7 * * * *", utc(2026, 1, 15, 11, 7)},
		{"0 * * * *", utc(2026, 1, 15, 11, 0)},
		{"30 9 * * *", utc(2026, 1, 16, 9, 30)},
		{"0-10/5 8 * * *", utc(2026, 1, 16, 8, 0)},
		{"0,30 10,11 * * *", utc(2026, 1, 15, 10, 30)},
		{"0 0 1 * *", utc(2026, 2, 1, 0, 0)},
		{"0 12 * * MON-FRI", utc(2026, 1, 15, 12, 0)},
		{"0 12 * * sat,SUN", utc(2026, 1, 17, 12, 0)},
		{"0 0 * JAN-MAR/2 *", utc(2026, 1, 16, 0, 0)},
		{"0 0 1 jun *", utc(2026, 6, 1, 0, 0)},
		{"0 0 29 2 *", utc(2028, 2, 29, 0, 0)},
		// Both day fields restricted: either may match (Friday the 16th
		// comes before the 13th of February).
		{"0 0 13 * 5", utc(2026, 1, 16, 0, 0)},
		{"0 0 13 * *", utc(2026, 2, 13, 0, 0)},
		// One of them "*": only the other one restricts.
		{"0 0 * * FRI", utc(2026, 1, 16, 0, 0)},
		{"0 0 */10 * *", utc(2026, 1, 21, 0, 0)},
		{"@hourly", utc(2026, 1, 15, 11, 0)},
		{"@daily", utc(2026, 1, 16, 0, 0)},
		{"@midnight", utc(2026, 1, 16, 0, 0)},
		{"@weekly", utc(2026, 1, 18, 0, 0)},
		{"@monthly", utc(2026, 2, 1, 0, 0)},
		{"@yearly", utc(2027, 1, 1, 0, 0)},
		{"@annually", utc(2027, 1, 1, 0, 0)},
		{"@every 90m", time.Date(2026, 1, 15, 11, 37, 30, 0, time.UTC)},
		{"0 0 30 2 *", time.Time{}},
	} {
		s, err := ParseSchedule(tc.spec)
		if err != nil {
			t.Errorf("%q: %v", tc.spec, err)
			continue
		}
		if got := s.Next(from); !got.Equal(tc.want) {
			t.Errorf("%q: next after %v = %v, want %v", tc.spec, from, got, tc.want)
		}
	}
}

func TestScheduleNextInZones(t *testing.T) {
	from := time.Date(2026, 1, 15, 10, 7, 30, 0, time.UTC)
	for _, tc := range []struct {
		zone, spec string
		want       time.Time // in UTC
	}{
		{"UTC", "0 9 * * *", time.Date(2026, 1, 16, 9, 0, 0, 0, time.UTC)},
		// India, +05:30, no daylight saving: 09:00 IST is 03:30 UTC.
		{"Asia/Kolkata", "0 9 * * *", time.Date(2026, 1, 16, 3, 30, 0, 0, time.UTC)},
		// Nepal, +05:45: 15:52:30 there; the next full hour is 10:15 UTC.
		{"Asia/Kathmandu", "0 * * * *", time.Date(2026, 1, 15, 10, 15, 0, 0, time.UTC)},
		// Japan, +09:00: the 1st of February 00:30 is still January in UTC.
		{"Asia/Tokyo", "30 0 1 * *", time.Date(2026, 1, 31, 15, 30, 0, 0, time.UTC)},
		// Weekdays count in the zone: Friday starts at 15:00 UTC Thursday.
		{"Asia/Tokyo", "0 0 * * FRI", time.Date(2026, 1, 15, 15, 0, 0, 0, time.UTC)},
	} {
		s, err := ParseSchedule(tc.spec)
		if err != nil {
			t.Fatalf("%q: %v", tc.spec, err)
		}
		got := s.Next(from.In(mustZone(t, tc.zone)))
		if !got.Equal(tc.want) {
			t.Errorf("%s %q: next = %v, want %v", tc.zone, tc.spec, got.UTC(), tc.want)
		}
	}
}

// TestScheduleNextDST: a wall-clock time that does not exist on the day
// clocks go forward is skipped, and the search still ends.
func TestScheduleNextDST(t *testing.T) {
	ny := mustZone(t, "America/New_York")
	s, err := ParseSchedule("30 2 * * *")
	if err != nil {
		t.Fatal(err)
	}
	got := s.Next(time.Date(2026, 3, 7, 12, 0, 0, 0, ny))
	if want := time.Date(2026, 3, 9, 2, 30, 0, 0, ny); !got.Equal(want) {
		t.Errorf("next = %v, want %v", got, want)
	}
	hourly, _ := ParseSchedule("0 * * * *")
	got = hourly.Next(time.Date(2026, 3, 8, 1, 30, 0, 0, ny))
	if want := time.Date(2026, 3, 8, 3, 0, 0, 0, ny); !got.Equal(want) {
		t.Errorf("hourly across the gap: %v, want %v", got, want)
	}
}

func TestParseScheduleErrors(t *testing.T) {
	for _, spec := range []string{
		"", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *",
		"* * * * 7", "5-1 * * * *", "*/0 * * * *", "*/x * * * *", "MON * * * *", "@fortnightly",
		"@every soon", "1,,2 * * * *",
	} {
		if _, err := ParseSchedule(spec); err == nil {
			t.Errorf("%q: no error", spec)
		}
	}
}

func TestMostRecent(t *testing.T) {
	s, _ := ParseSchedule("* * * * *")
	earliest := time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC)
	got, n := mostRecent(s, earliest, earliest.Add(5*time.Minute+30*time.Second))
	if want := earliest.Add(5 * time.Minute); !got.Equal(want) || n != 5 {
		t.Errorf("got %v (%d), want %v (5)", got, n, want)
	}
	if got, n := mostRecent(s, earliest, earliest.Add(30*time.Second)); !got.IsZero() || n != 0 {
		t.Errorf("nothing due yet: got %v (%d)", got, n)
	}
	// A year offline: the latest time is still found, quickly.
	now := earliest.Add(365*24*time.Hour + 90*time.Second)
	got, n = mostRecent(s, earliest, now)
	if want := earliest.Add(365*24*time.Hour + time.Minute); !got.Equal(want) || n <= tooManyMissed {
		t.Errorf("got %v (%d), want %v (>%d)", got, n, want, tooManyMissed)
	}
	every, _ := ParseSchedule("@every 1h")
	got, n = mostRecent(every, earliest, earliest.Add(1000*time.Hour+time.Minute))
	if want := earliest.Add(1000 * time.Hour); !got.Equal(want) || n != 1000 {
		t.Errorf("@every: got %v (%d), want %v (1000)", got, n, want)
	}
}
