package job

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// indexSet is a set of completion indexes.
type indexSet map[int]struct{}

// parseIndexes reads the "1,3-5,7" form of status.completedIndexes and
// successPolicy rules, keeping indexes below limit (limit < 0: all).
func parseIndexes(s string, limit int) (indexSet, error) {
	out := indexSet{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("invalid index %q in %q", lo, s)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("invalid index range %q in %q", part, s)
			}
		}
		for i := a; i <= b && (limit < 0 || i < limit); i++ {
			out[i] = struct{}{}
		}
	}
	return out, nil
}

func (s indexSet) has(i int) bool {
	_, ok := s[i]
	return ok
}

// sorted returns the indexes in increasing order.
func (s indexSet) sorted() []int {
	out := make([]int, 0, len(s))
	for i := range s {
		out = append(out, i)
	}
	slices.Sort(out)
	return out
}

// String renders the set as "1,3-5,7".
func (s indexSet) String() string {
	var b strings.Builder
	idx := s.sorted()
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && idx[j+1] == idx[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(idx[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(idx[j]))
		}
		i = j + 1
	}
	return b.String()
}

// podIndex returns the completion index of pod, or -1 if it has none or
// it is not below completions.
func podIndex(pod *corev1.Pod, completions int) int {
	v, ok := pod.Annotations[indexAnnotation]
	if !ok {
		v, ok = pod.Labels[indexLabel]
	}
	if !ok {
		return -1
	}
	i, err := strconv.Atoi(v)
	if err != nil || i < 0 || i >= completions {
		return -1
	}
	return i
}
