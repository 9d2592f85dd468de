package main

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// result is one measured operation: its latencies, the wall time the whole
// batch took (for throughput), and a free-form note.
type result struct {
	name      string
	latencies []time.Duration
	wall      time.Duration
	errors    int
	note      string
}

// percentile is the nearest-rank p-th percentile (0 < p <= 100) of sorted d.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	if i < 0 {
		i = 0
	}
	return sorted[i]
}

func printTable(w io.Writer, results []result) {
	// Numbers align right; the operation names, padded, read left-aligned.
	width := len("operation")
	for _, r := range results {
		width = max(width, len(r.name))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\tcount\tp50\tp99\tmax\tthroughput (ops/s)\terrors\t\n", width, "operation")
	for _, r := range results {
		d := append([]time.Duration(nil), r.latencies...)
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		tput := "-"
		if r.wall > 0 {
			tput = fmt.Sprintf("%.0f", float64(len(d))/r.wall.Seconds())
		}
		var slowest time.Duration
		if len(d) > 0 {
			slowest = d[len(d)-1]
		}
		fmt.Fprintf(tw, "%-*s\t%d\t%s\t%s\t%s\t%s\t%d\t\n", width, r.name, len(d),
			round(percentile(d, 50)), round(percentile(d, 99)), round(slowest), tput, r.errors)
	}
	tw.Flush()
	for _, r := range results {
		if r.note != "" {
			fmt.Fprintf(w, "  %s: %s\n", r.name, r.note)
		}
	}
}

// round keeps three significant digits, which is all a latency table needs.
func round(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= 100*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d >= 10*time.Millisecond:
		return d.Round(10 * time.Microsecond)
	case d >= time.Millisecond:
		return d.Round(time.Microsecond)
	}
	return d.Round(100 * time.Nanosecond)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func section(w io.Writer, title string) {
	fmt.Fprintf(w, "\n%s\n%s\n", title, strings.Repeat("-", len(title)))
}
