package images

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"
)

// PrintList writes images as a table like `crictl images`: one row per tag
// (or per repo digest for untagged images), IMAGE ID shortened to 12 hex.
func PrintList(w io.Writer, imgs []*Image) {
	type row struct{ repo, tag, id, size string }
	var rows []row
	for _, img := range imgs {
		id, size := shortID(img.ID), HumanSize(img.Size)
		switch {
		case len(img.RepoTags) > 0:
			for _, t := range img.RepoTags {
				repo, tag := splitRepoTag(t)
				rows = append(rows, row{repo, tag, id, size})
			}
		case len(img.RepoDigests) > 0:
			repo, _ := splitRepoTag(img.RepoDigests[0])
			rows = append(rows, row{repo, "<none>", id, size})
		default:
			rows = append(rows, row{"<none>", "<none>", id, size})
		}
	}
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].repo != rows[j].repo {
			return rows[i].repo < rows[j].repo
		}
		return rows[i].tag < rows[j].tag
	})
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tTAG\tIMAGE ID\tSIZE")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.repo, r.tag, r.id, r.size)
	}
	tw.Flush()
}

// HumanSize formats bytes with decimal units and three significant digits,
// as crictl and docker do ("4.27MB", "871kB", "12B").
func HumanSize(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB"}
	f := float64(n)
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	s := fmt.Sprintf("%.3g", f)
	if strings.Contains(s, "e") { // %.3g switches to exponent form at 1000
		s = fmt.Sprintf("%.0f", f)
	}
	return s + units[i]
}

// NewProgressPrinter returns a Progress callback for a terminal or a log. On
// a terminal it redraws one status line (at most every 200ms) with bytes per
// active layer; elsewhere it prints only a line per finished layer and per
// finished image. It is safe for concurrent use.
func NewProgressPrinter(w io.Writer) func(Progress) {
	p := &progressPrinter{w: w, tty: isTerminal(w), layers: map[string]Progress{}}
	return p.update
}

type progressPrinter struct {
	w      io.Writer
	tty    bool
	mu     sync.Mutex
	layers map[string]Progress // active layers
	last   time.Time
	drawn  bool
}

func (p *progressPrinter) update(ev Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case ev.Layer == "" && ev.Complete:
		p.clear()
		if ev.Cached {
			fmt.Fprintf(p.w, "%s: up to date\n", ev.Ref)
		} else {
			fmt.Fprintf(p.w, "%s: done\n", ev.Ref)
		}
	case ev.Complete:
		delete(p.layers, ev.Layer)
		p.clear()
		if ev.Cached {
			fmt.Fprintf(p.w, "%s: layer %s already exists\n", ev.Ref, shortID(ev.Layer))
		} else {
			fmt.Fprintf(p.w, "%s: layer %s done (%s)\n", ev.Ref, shortID(ev.Layer), HumanSize(ev.Total))
		}
		p.draw()
	default:
		p.layers[ev.Layer] = ev
		if p.tty && time.Since(p.last) >= 200*time.Millisecond {
			p.clear()
			p.draw()
		}
	}
}

// clear erases the status line (terminals only).
func (p *progressPrinter) clear() {
	if p.tty && p.drawn {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.drawn = false
	}
}

func (p *progressPrinter) draw() {
	if !p.tty || len(p.layers) == 0 {
		return
	}
	keys := make([]string, 0, len(p.layers))
	for k := range p.layers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		ev := p.layers[k]
		if ev.Total > 0 {
			parts = append(parts, fmt.Sprintf("%s %s/%s", shortID(k), HumanSize(ev.Done), HumanSize(ev.Total)))
		} else {
			parts = append(parts, fmt.Sprintf("%s %s", shortID(k), HumanSize(ev.Done)))
		}
	}
	fmt.Fprint(p.w, "pulling: "+strings.Join(parts, "  "))
	p.drawn = true
	p.last = time.Now()
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
