package apiserver

import "testing"

func TestContinueToken(t *testing.T) {
	const prefix = "/registry/pods/default/"
	tok, err := encodeContinue(prefix+"web-1\x00", prefix, 42)
	if err != nil {
		t.Fatal(err)
	}
	key, rev, err := decodeContinue(tok, prefix)
	if err != nil || key != prefix+"web-1\x00" || rev != 42 {
		t.Fatalf("round trip: %q %d %v", key, rev, err)
	}
	// Upstream's encoding: base64url without padding of {"v","rv","start"}.
	if want := "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6NDIsInN0YXJ0Ijoid2ViLTFcdTAwMDAifQ"; tok != want {
		t.Fatalf("token %s, want %s", tok, want)
	}
	for _, bad := range []string{
		"%%%",
		"eyJ2IjoibWV0YS5rOHMuaW8vdjIiLCJydiI6NDIsInN0YXJ0IjoieCJ9",         // v2
		"eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MCwic3RhcnQiOiJ4In0",          // rv 0
		"eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6NDIsInN0YXJ0IjoiLi4vLi4veCJ9", // ../../x
	} {
		if _, _, err := decodeContinue(bad, prefix); err == nil {
			t.Errorf("token %s accepted", bad)
		}
	}
}
