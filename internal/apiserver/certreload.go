package apiserver

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certReloader serves the certificate in certFile and keyFile and picks up
// a renewed pair without a restart: new handshakes check the files'
// modification times at most every certCheckInterval.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu        sync.Mutex
	cert      *tls.Certificate
	certMod   time.Time
	keyMod    time.Time
	lastCheck time.Time
}

const certCheckInterval = 10 * time.Second

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *certReloader) load() error {
	certMod, keyMod, err := r.modTimes()
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return err
	}
	r.cert, r.certMod, r.keyMod = &cert, certMod, keyMod
	return nil
}

func (r *certReloader) modTimes() (cert, key time.Time, err error) {
	ci, err := os.Stat(r.certFile)
	if err != nil {
		return cert, key, fmt.Errorf("serving certificate: %w", err)
	}
	ki, err := os.Stat(r.keyFile)
	if err != nil {
		return cert, key, fmt.Errorf("serving key: %w", err)
	}
	return ci.ModTime(), ki.ModTime(), nil
}

// get is tls.Config.GetCertificate. A pair that fails to load (caught
// between the key's and the certificate's write) keeps the old one
// until the next check.
func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.lastCheck) >= certCheckInterval {
		r.lastCheck = now
		certMod, keyMod, err := r.modTimes()
		if err == nil && (!certMod.Equal(r.certMod) || !keyMod.Equal(r.keyMod)) {
			if err := r.load(); err != nil {
				r.log.Warn("renewed serving certificate not loaded yet", "err", err)
			} else {
				r.log.Info("serving certificate reloaded", "file", r.certFile)
			}
		}
	}
	return r.cert, nil
}
