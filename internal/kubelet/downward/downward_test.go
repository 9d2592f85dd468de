package downward

import "testing"

func TestExpand(t *testing.T) {
	env := map[string]string{"A": "x", "B": "y"}
	for in, want := range map[string]string{
		"$(A)/$(B)":  "x/y",
		"$$(A)":      "$(A)",
		"$(C)/z":     "$(C)/z",
		"plain":      "plain",
		"$(A":        "$(A",
		"a$b":        "a$b",
		"trailing$":  "trailing$",
		"$(A)$(A)-x": "xx-x",
	} {
		if got := Expand(in, env); got != want {
			t.Errorf("Expand(%q) = %q, want %q", in, got, want)
		}
	}
}
