package harness

import (
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"
)

// TestBusyRefusal: in a worker, a refusal seen through another client may
// be the other sessions' doing and marks the spec busy; anything else, or
// any refusal outside a worker, is the server's answer.
func TestBusyRefusal(t *testing.T) {
	tests := []struct {
		name     string
		worker   bool
		err      error
		greeting string
		busy     bool
	}{
		{"refused connect", true, fmt.Errorf("dial: %w", syscall.ECONNREFUSED), "", true},
		{"closed before the greeting", true, io.EOF, "", true},
		{"-ERR greeting", true, errors.New("pop3: -ERR"), "-ERR Too many connections\r\n", true},
		{"+OK greeting, other failure", true, errors.New("pop3: bad greeting"), "+OK ready\r\n", false},
		{"refused connect outside a worker", false, syscall.ECONNREFUSED, "", false},
		{"-ERR greeting outside a worker", false, errors.New("pop3: -ERR"), "-ERR busy\r\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := &Target{Config: Config{Worker: tt.worker}, rec: &Recorder{}}
			err := tg.BusyRefusal(tt.err, tt.greeting)
			if got := errors.Is(err, ErrBusy); got != tt.busy {
				t.Errorf("BusyRefusal = %v, busy %v; want busy %v", err, got, tt.busy)
			}
			if got := tg.rec.Busy() != ""; got != tt.busy {
				t.Errorf("spec marked busy: %v, want %v", got, tt.busy)
			}
		})
	}
}
