package embed

import (
	"context"
	"testing"
	"time"
)

// StartTest starts an instance for a test and closes it when the test
// ends; a failed start fails the test.
func StartTest(t testing.TB, o Options) *Instance {
	t.Helper()
	in, err := Start(context.Background(), o)
	if err != nil {
		t.Fatalf("starting the reference server: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := in.Close(ctx); err != nil {
			t.Errorf("stopping the reference server: %v", err)
		}
	})
	return in
}
