package peertest

import "testing"

// Both is what a peer's two runs must show: a readonly run, and one that
// also allows mutating and disruptive specs.
type Both struct {
	Profile string
	// Deviations and MayDeviate judge the readonly run; Disruptive is the
	// whole list of the other run (MayDeviate applies there too).
	Deviations, Disruptive, MayDeviate map[string]string
	// Observed and Methods hold for the readonly run. The other run's
	// mutating specs delete mail after the parameters are measured;
	// DisruptiveObserved holds what only that run measures.
	Observed           map[string]any
	Methods            map[string]string
	DisruptiveObserved map[string]any
	// Always holds for both runs.
	Always map[string]any
	// DisruptiveArgs are extra flags of the second run (a label filter).
	DisruptiveArgs []string
}

// CheckBoth runs the probe twice at once, readonly and with
// --allow-mutating --allow-disruptive, and checks each report against
// want.
func (p Probe) CheckBoth(t *testing.T, want Both) {
	t.Run("readonly", func(t *testing.T) {
		t.Parallel()
		run := p.Run(t)
		CheckRun(t, run, want.Profile)
		CheckDeviations(t, run.Report, want.Deviations, want.MayDeviate)
		CheckObserved(t, run.Report, want.Observed)
		CheckObserved(t, run.Report, want.Always)
		CheckMethods(t, run.Report, want.Methods)
	})
	t.Run("disruptive", func(t *testing.T) {
		t.Parallel()
		run := p.Run(t, append([]string{"--allow-mutating", "--allow-disruptive"}, want.DisruptiveArgs...)...)
		CheckRun(t, run, want.Profile)
		CheckDeviations(t, run.Report, want.Disruptive, want.MayDeviate)
		CheckObserved(t, run.Report, want.DisruptiveObserved)
		CheckObserved(t, run.Report, want.Always)
	})
}
