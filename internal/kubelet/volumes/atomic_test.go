package volumes

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

// TestAtomicWriterNoMix has a reader take snapshots through ..data while
// the payload is rewritten: every snapshot must be one whole version.
func TestAtomicWriterNoMix(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	write := func(n int) {
		v := []byte(strconv.Itoa(n))
		files := map[string]file{"a": {v, 0o644}, "sub/b": {v, 0o600}}
		if n%2 == 1 {
			files["odd"] = file{v, 0o644}
		}
		if _, err := writeAtomic(dir, files, -1); err != nil {
			t.Error(err)
		}
	}
	write(0)

	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i <= 200; i++ {
			write(i)
		}
		close(stop)
	}()
	snapshots := 0
	for done := false; !done; {
		select {
		case <-stop:
			done = true
		default:
		}
		// Holding the version directory open pins one version even if
		// the writer removes it meanwhile.
		root, err := os.OpenRoot(filepath.Join(dir, dataLink))
		if err != nil {
			if _, lerr := os.Lstat(filepath.Join(dir, dataLink)); lerr != nil {
				t.Fatalf("..data missing during an update: %v", lerr)
			}
			continue // the version it named was removed as we opened it
		}
		read := func(name string) (string, error) {
			f, err := root.Open(name)
			if err != nil {
				return "", err
			}
			defer f.Close()
			b, err := io.ReadAll(f)
			return string(b), err
		}
		a, errA := read("a")
		b, errB := read("sub/b")
		root.Close()
		if errA != nil || errB != nil {
			if errors.Is(errA, os.ErrNotExist) || errors.Is(errB, os.ErrNotExist) {
				continue // this version was removed while we read it
			}
			t.Fatal(errA, errB)
		}
		if a != b {
			t.Fatalf("mixed versions: a=%s b=%s", a, b)
		}
		snapshots++
	}
	wg.Wait()
	if got, _ := os.ReadFile(filepath.Join(dir, "a")); string(got) != "200" {
		t.Errorf("final a = %q", got)
	}
	if _, err := os.Lstat(filepath.Join(dir, "odd")); !os.IsNotExist(err) {
		t.Errorf("odd (absent from the last version) still visible: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 4 { // a, sub, ..data, one version
		t.Errorf("%d entries left in the volume dir, want 4", len(entries))
	}
	t.Logf("%d consistent snapshots", snapshots)
}
