package harness

import "testing"

func TestCount(t *testing.T) {
	for _, tt := range []struct {
		n          int
		noun, want string
	}{{0, "message", "0 messages"}, {1, "message", "1 message"}, {2, "message", "2 messages"},
		{1, "-ERR reply", "1 -ERR reply"}, {3, "-ERR reply", "3 -ERR replies"}, {2, "day", "2 days"}} {
		if got := Count(tt.n, tt.noun); got != tt.want {
			t.Errorf("Count(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}
