package contract

import "fmt"

// Commands counts client lines by command class (suites/harness
// CommandClass: read, login, failed-login, dele, reset, quit, hostile,
// other) over every connection a run opened: the EntryCommands report
// entry of each suite process as JSON, and the report's "commands".
// Refused counts the lines the wire guard kept from a remote host because
// the run did not allow their class.
type Commands struct {
	Sent    map[string]int `json:"sent" yaml:"sent"`
	Refused map[string]int `json:"refused,omitempty" yaml:"refused,omitempty"`
	// Connections and RoundTrips are the network cost of the lines:
	// connections opened, and writes the client waited on for a reply
	// (suites/harness Traffic). Zero in a report of an older suite.
	Connections int `json:"connections,omitempty" yaml:"connections,omitempty"`
	RoundTrips  int `json:"round_trips,omitempty" yaml:"round_trips,omitempty"`
	// Sessions says how a run against a remote host shared its specs
	// among sessions at once, and why it held fewer than allowed.
	Sessions string `json:"sessions,omitempty" yaml:"sessions,omitempty"`
}

// TrafficText shows the network cost, "" when the run did not count it.
func (c *Commands) TrafficText() string {
	if c == nil || c.Connections == 0 {
		return ""
	}
	return fmt.Sprintf("%d connections, %d round trips", c.Connections, c.RoundTrips)
}

// Add sums another process's counts into c.
func (c *Commands) Add(o Commands) {
	c.Connections += o.Connections
	c.RoundTrips += o.RoundTrips
	for dst, src := range map[*map[string]int]map[string]int{&c.Sent: o.Sent, &c.Refused: o.Refused} {
		for k, v := range src {
			if *dst == nil {
				*dst = map[string]int{}
			}
			(*dst)[k] += v
		}
	}
}
