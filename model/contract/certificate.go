package contract

import (
	"strings"
	"time"
)

// Certificate describes the certificate a TLS target presented when the
// suite started: the suite measures it (suites/harness), carries it as
// the EntryCertificate report entry, and the report shows it under its
// target.
type Certificate struct {
	Subject  string    `json:"subject,omitempty" yaml:"subject,omitempty"`
	Issuer   string    `json:"issuer,omitempty" yaml:"issuer,omitempty"`
	DNSNames []string  `json:"dns_names,omitempty" yaml:"dns_names,omitempty"`
	NotAfter time.Time `json:"not_after,omitzero" yaml:"not_after,omitempty"`
	// Verified is false when verification was switched off
	// (POP3_INSECURE_SKIP_VERIFY, --insecure-skip-verify): the
	// certificate was then only looked at.
	Verified   bool   `json:"verified" yaml:"verified"`
	TLSVersion string `json:"tls_version,omitempty" yaml:"tls_version,omitempty"`
	// Error says why the certificate could not be looked at; the other
	// fields are then empty.
	Error string `json:"error,omitempty" yaml:"error,omitempty"`
}

// Text is the certificate in one line.
func (c *Certificate) Text() string {
	if c.Error != "" {
		return "not available: " + c.Error
	}
	s := c.Subject
	if c.Issuer != "" && c.Issuer != c.Subject {
		s += ", issued by " + c.Issuer
	} else if c.Issuer != "" {
		s += ", self-signed"
	}
	if len(c.DNSNames) > 0 {
		s += ", names " + strings.Join(c.DNSNames, " ")
	}
	if !c.NotAfter.IsZero() {
		s += ", valid until " + c.NotAfter.UTC().Format("2006-01-02")
	}
	if c.TLSVersion != "" {
		s += ", " + c.TLSVersion
	}
	if c.Verified {
		return s + " (verified)"
	}
	return s + " (not verified: --insecure-skip-verify)"
}
