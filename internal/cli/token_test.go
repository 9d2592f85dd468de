package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"skiff/internal/server/servertest"
)

// runTokenCmd runs `skiff token ARGS...` and returns its output.
func runTokenCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	app := &cli.App{Name: "skiff", Writer: &out, ErrWriter: &out, Commands: []*cli.Command{tokenCommand()}}
	err := app.RunContext(context.Background(), append([]string{"skiff", "token"}, args...))
	return strings.TrimSpace(out.String()), err
}

func TestTokenCommands(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane)
	dataDir := "--data-dir=" + s.DataDir
	for _, tc := range []struct {
		args []string
		user string
		file func(testing.TB) string
	}{
		{[]string{"--agent"}, "::node:", s.AgentToken},
		{nil, "::server:", s.JoinToken},
	} {
		before, err := runTokenCmd(t, append(tc.args, dataDir)...)
		if err != nil || before != tc.file(t) || !strings.Contains(before, tc.user) {
			t.Fatalf("skiff token %v: %q %v, want the %s token %q", tc.args, before, err, tc.user, tc.file(t))
		}
		rotated, err := runTokenCmd(t, append([]string{"rotate", dataDir}, tc.args...)...)
		if err != nil || rotated == before || !strings.Contains(rotated, tc.user) {
			t.Fatalf("skiff token rotate %v: %q %v", tc.args, rotated, err)
		}
		if after, _ := runTokenCmd(t, append(tc.args, dataDir)...); after != rotated {
			t.Fatalf("skiff token %v after the rotation: %q, want %q", tc.args, after, rotated)
		}
	}
	if _, err := runTokenCmd(t, "rotate", "--data-dir="+t.TempDir()); err == nil || !strings.Contains(err.Error(), "admin kubeconfig") {
		t.Fatalf("rotate without a server: %v", err)
	}
}
