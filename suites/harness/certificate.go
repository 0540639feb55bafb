package harness

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/pop3conformance/pop3conformance/model/contract"
)

// ErrNoTLS says the target is tested without TLS, so it presents no
// certificate.
var ErrNoTLS = errors.New("the target is tested without TLS")

// Certificate connects once the target's usual way and describes the
// certificate the server presented in the TLS handshake.
func (t *Target) Certificate(ctx context.Context) (*contract.Certificate, error) {
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
	return &contract.Certificate{
		Subject:    leaf.Subject.String(),
		Issuer:     leaf.Issuer.String(),
		DNSNames:   leaf.DNSNames,
		NotAfter:   leaf.NotAfter.UTC(),
		Verified:   !t.tlsConf.InsecureSkipVerify,
		TLSVersion: tls.VersionName(st.Version),
	}, nil
}
