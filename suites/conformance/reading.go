package conformance

import (
	. "github.com/onsi/ginkgo/v2"

	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// A Reading is an exchange with the server that several specs judge, each
// by its own rule: CAPA in both states, one session that draws every kind
// of reply. The first spec that needs it reads it; the later specs of the
// run judge the same replies and show the same transcripts, instead of
// asking the server again, which across a network costs a connection and
// a login per spec. Pass the Reading to Spec as well: when the probe
// shares specs among processes, the specs of one Reading go to the same
// process, so the server is asked once per run.
//
// Only a reading that completed is kept; one that failed or was skipped
// is read again by the next spec, which then fails or skips on its own.
type Reading[T any] struct {
	name string
	read func(SpecContext, *harness.Target) T
}

// sharedReading is a Reading of any type, as Spec sees it.
type sharedReading interface{ readingName() string }

func (r Reading[T]) readingName() string { return r.name }

// Get returns the reading for t, reading it when no earlier spec has.
func (r Reading[T]) Get(ctx SpecContext, t *harness.Target) T {
	if v, ok := t.Recall(r.name); ok {
		return v.(T)
	}
	mark := t.Recorder().Mark()
	v := r.read(ctx, t)
	t.Remember(r.name, v, mark)
	return v
}
