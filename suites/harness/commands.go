package harness

import "github.com/pop3conformance/pop3conformance/model/contract"

// Commands is what the run sent and the guard refused, by class, with
// the connections and round trips: the suite's contract.EntryCommands
// and the probe's measurement report it alike.
func (r *Recorder) Commands() contract.Commands {
	tr := r.Traffic()
	return contract.Commands{
		Sent:        classNames(r.ClassesSent()),
		Refused:     classNames(r.ClassesRefused()),
		Connections: tr.Connections,
		RoundTrips:  tr.RoundTrips,
	}
}

// classNames keys counts by class name; nil for none.
func classNames(m map[CommandClass]int) map[string]int {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[string(k)] = v
	}
	return out
}
