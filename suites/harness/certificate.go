package harness

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"
)

// Certificate describes the certificate a server presents, for the
// report's description of the target.
type Certificate struct {
	Subject  string    `json:"subject"`
	Issuer   string    `json:"issuer"`
	DNSNames []string  `json:"dns_names,omitempty"`
	NotAfter time.Time `json:"not_after"`
	// Verified is false when verification was switched off
	// (POP3_INSECURE_SKIP_VERIFY): the certificate was then only looked at.
	Verified   bool   `json:"verified"`
	TLSVersion string `json:"tls_version"`
	// Error says why the certificate could not be looked at; the other
	// fields are then empty.
	Error string `json:"error,omitempty"`
}

// ErrNoTLS says the target is tested without TLS, so it presents no
// certificate.
var ErrNoTLS = errors.New("the target is tested without TLS")

// Certificate connects once the target's usual way and describes the
// certificate the server presented in the TLS handshake.
func (t *Target) Certificate(ctx context.Context) (*Certificate, error) {
	if t.Mode() == TLSNone {
		return nil, ErrNoTLS
	}
	c, err := t.Dial(ctx)
	if c != nil {
		defer c.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("connecting for the certificate: %w", err)
	}
	st, ok := c.TLSState()
	if !ok || len(st.PeerCertificates) == 0 {
		return nil, errors.New("the TLS handshake carried no certificate")
	}
	_, _ = c.Quit()
	leaf := st.PeerCertificates[0]
	return &Certificate{
		Subject:    leaf.Subject.String(),
		Issuer:     leaf.Issuer.String(),
		DNSNames:   leaf.DNSNames,
		NotAfter:   leaf.NotAfter.UTC(),
		Verified:   !t.tlsConf.InsecureSkipVerify,
		TLSVersion: tls.VersionName(st.Version),
	}, nil
}
