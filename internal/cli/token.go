package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"skiff/internal/config"
	"skiff/internal/join"
)

func tokenCommand() *cli.Command {
	agentFlag := &cli.BoolFlag{Name: "agent", Usage: "the agent token (joins agents only) instead of the server token (joins servers and agents)"}
	return &cli.Command{
		Name:  "token",
		Usage: "print the server token of the server on this machine (--agent: the agent token)",
		Flags: []cli.Flag{dataDirFlag(), agentFlag},
		Action: func(c *cli.Context) error {
			layout := config.Layout{DataDir: c.String("data-dir")}
			p := layout.TokenFile()
			if c.Bool("agent") {
				p = layout.AgentTokenFile()
			}
			data, err := os.ReadFile(p)
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("no token at %s: has `skiff server` run with this --data-dir?", p)
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, strings.TrimSpace(string(data)))
			return nil
		},
		Subcommands: []*cli.Command{{
			Name:  "rotate",
			Usage: "replace the server token (--agent: the agent token) on every server; nodes that joined keep working, the old token joins no one",
			Flags: []cli.Flag{dataDirFlag(), agentFlag,
				&cli.StringFlag{Name: "new-token", Usage: "the new token or its secret (default: a random one)"}},
			Action: func(c *cli.Context) error {
				role := join.TokenRoleServer
				if c.Bool("agent") {
					role = join.TokenRoleAgent
				}
				token, err := rotateToken(c.Context, config.Layout{DataDir: c.String("data-dir")}, role, c.String("new-token"))
				if err != nil {
					return err
				}
				fmt.Fprintln(c.App.Writer, token)
				return nil
			},
		}},
	}
}

// rotateToken asks the server on this machine, as its admin (the admin
// kubeconfig in the data dir), to rotate a token, and returns the new one.
func rotateToken(ctx context.Context, layout config.Layout, role, secret string) (string, error) {
	kc := layout.AdminKubeconfig()
	rc, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		return "", fmt.Errorf("rotate: the server's admin kubeconfig %s: %w (run this on a server, as root)", kc, err)
	}
	rc.Timeout = time.Minute
	client, err := rest.HTTPClientFor(rc)
	if err != nil {
		return "", fmt.Errorf("rotate: %w", err)
	}
	body, err := json.Marshal(&join.RotateTokenRequest{Role: role, Secret: secret})
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(rc.Host, "/")+join.TokensPath, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("rotate: is the server running? %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("rotate: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var st metav1.Status
		if json.Unmarshal(data, &st) == nil && st.Message != "" {
			return "", fmt.Errorf("rotate: %s: %s", resp.Status, st.Message)
		}
		return "", fmt.Errorf("rotate: %s: %s", resp.Status, strings.TrimSpace(string(data)))
	}
	var out join.RotateTokenResponse
	if err := json.Unmarshal(data, &out); err != nil || out.Token == "" {
		return "", fmt.Errorf("rotate: unexpected answer: %s", data)
	}
	return out.Token, nil
}
