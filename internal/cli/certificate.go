package cli

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
)

func certificateCommand() *cli.Command {
	return &cli.Command{
		Name:  "certificate",
		Usage: "inspect this node's certificates",
		Subcommands: []*cli.Command{{
			Name:  "check",
			Usage: "print every certificate under the data dir with its subject, issuer and expiry",
			Flags: []cli.Flag{dataDirFlag()},
			Action: func(c *cli.Context) error {
				return checkCertificates(c.App.Writer, c.String("data-dir"), time.Now())
			},
		}},
	}
}

// checkCertificates lists the certificates in the .crt files under dir.
// A certificate with less than a third of its life left is marked "renew".
// Servers renew their leaves at start when under 90 days are left, agents
// theirs when under 30 days are; a restart renews them.
func checkCertificates(w io.Writer, dir string, now time.Time) error {
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tSUBJECT\tISSUER\tEXPIRES\tLEFT\tSTATUS")
	found := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(d.Name(), ".crt") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		for rest := data; ; {
			var block *pem.Block
			if block, rest = pem.Decode(rest); block == nil {
				break
			}
			if block.Type != "CERTIFICATE" {
				continue
			}
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			found++
			left := cert.NotAfter.Sub(now)
			status := "ok"
			switch life := cert.NotAfter.Sub(cert.NotBefore); {
			case left <= 0:
				status = "EXPIRED"
			case left < life/3:
				status = "renew"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", rel, cert.Subject.CommonName, cert.Issuer.CommonName,
				cert.NotAfter.UTC().Format(time.RFC3339), roundDays(left), status)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if found == 0 {
		return errors.New("no certificates under " + dir + ": has skiff run with this --data-dir?")
	}
	return tw.Flush()
}

func roundDays(d time.Duration) string {
	if d <= 0 {
		return "0d"
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
