package harness

import (
	"context"
	"strings"
	"testing"
)

func TestReadingsKeptWithEvidence(t *testing.T) {
	ctx := context.Background()
	tg, err := Open(ctx, Config{Profile: "exchange2010", TLS: TLSNone})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	rec := tg.Recorder()

	// A first spec reads the greeting and keeps it.
	mark := rec.Mark()
	c, err := tg.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tg.Remember("greeting", c.Greeting.String(), mark)
	first := rec.Flush()
	if !strings.Contains(first, "+OK") {
		t.Fatalf("first spec's evidence lacks the greeting:\n%s", first)
	}

	// A later spec gets the value and the same transcript, without a
	// connection of its own.
	before := rec.Traffic()
	v, ok := tg.Recall("greeting")
	if !ok || !strings.HasPrefix(v.(string), "+OK") {
		t.Fatalf("Recall = %v, %v", v, ok)
	}
	if got := rec.Traffic(); got != before {
		t.Errorf("Recall opened connections: %+v -> %+v", before, got)
	}
	second := rec.Flush()
	if !strings.Contains(second, "read once") || !strings.Contains(second, strings.SplitN(first, "\n", 2)[1]) {
		t.Errorf("the later spec's evidence does not cite the reading:\n%s", second)
	}
	if third := rec.Flush(); third != "" {
		t.Errorf("a citation outlived its spec: %q", third)
	}

	// Variants keep their own readings: another server, other replies.
	v2, err := tg.Variant(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := v2.Recall("greeting"); ok {
		t.Error("a variant recalled its parent's reading")
	}

	// A reading the run's own sessions may have spoilt is not kept.
	rec.setBusy(BusySecondConnection)
	tg.Remember("busy", "x", rec.Mark())
	rec.Flush()
	if _, ok := tg.Recall("busy"); ok {
		t.Error("a busy spec's reading was kept")
	}
}
