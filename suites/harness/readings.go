package harness

import "strings"

// A reading is what one spec read from the server for later specs of the
// run that judge the same replies, with the transcripts that show them.
type reading struct {
	value    any
	evidence string
}

// Remember keeps v, read by the spec now running, under key for the rest
// of the run on this target, with the transcripts of the connections the
// spec opened since mark (Recorder.Mark) as its evidence. A reading the
// run's own sessions may have spoilt (Recorder.Busy) is not kept.
func (t *Target) Remember(key string, v any, mark int) {
	if t.rec.Busy() != "" {
		return
	}
	ev := t.rec.since(mark)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.readings == nil {
		t.readings = map[string]reading{}
	}
	t.readings[key] = reading{value: v, evidence: ev}
}

// Recall returns what Remember kept under key, and puts its transcripts
// into the running spec's evidence.
func (t *Target) Recall(key string) (any, bool) {
	t.mu.Lock()
	r, ok := t.readings[key]
	t.mu.Unlock()
	if ok {
		t.rec.cite(r.evidence)
	}
	return r.value, ok
}

// Remembers reports whether a reading is kept under key, without citing
// it.
func (t *Target) Remembers(key string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.readings[key]
	return ok
}

// Mark returns a position in the running spec's connections: Remember
// keeps the transcripts of those opened after it.
func (r *Recorder) Mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.conns)
}

func (r *Recorder) since(mark int) string {
	r.mu.Lock()
	conns := append([]*Conn(nil), r.conns[min(mark, len(r.conns)):]...)
	r.mu.Unlock()
	var sb strings.Builder
	for _, c := range conns {
		sb.WriteString(c.tr.String())
	}
	return sb.String()
}

// cite adds transcripts recorded by an earlier spec to the running spec's
// evidence (Flush returns them first).
func (r *Recorder) cite(evidence string) {
	if evidence == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cited = append(r.cited, evidence)
}
