package contract

import (
	"encoding/json"
	"testing"
	"time"
)

func TestTimeoutOf(t *testing.T) {
	for _, tc := range []struct {
		labels []string
		want   time.Duration
	}{
		{nil, SpecTimeout},
		{[]string{string(Readonly), ReqLabel("V0008")}, SpecTimeout},
		{[]string{string(Disruptive), string(Slow), ReqLabel("V0002")}, SlowSpecTimeout},
	} {
		if got := TimeoutOf(tc.labels); got != tc.want {
			t.Errorf("TimeoutOf(%q) = %v, want %v", tc.labels, got, tc.want)
		}
	}
}

func TestReqID(t *testing.T) {
	for _, tc := range []struct {
		label, id string
		ok        bool
	}{
		{ReqLabel("RFC1939-3-keywords"), "RFC1939-3-keywords", true},
		{"req:2.1.1", "2.1.1", true},
		{string(Robustness), "", false},
	} {
		id, ok := ReqID(tc.label)
		if id != tc.id || ok != tc.ok {
			t.Errorf("ReqID(%q) = %q, %v; want %q, %v", tc.label, id, ok, tc.id, tc.ok)
		}
	}
}

// The certificate crosses from the suite to the report as JSON text in a
// report entry: it must come back as it went.
func TestCertificateRoundTrip(t *testing.T) {
	for _, c := range []Certificate{
		{Subject: "CN=localhost", Issuer: "CN=localhost", DNSNames: []string{"localhost"},
			NotAfter: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), Verified: true, TLSVersion: "TLS 1.3"},
		{Error: "connecting for the certificate: refused"},
	} {
		data, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var back Certificate
		if err := json.Unmarshal(data, &back); err != nil {
			t.Fatal(err)
		}
		if back.Text() != c.Text() {
			t.Errorf("round trip of %s: %q, want %q", data, back.Text(), c.Text())
		}
	}
}
