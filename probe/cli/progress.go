package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/probe/report"
)

// newProgress picks the progress display: none with --quiet, a live bar
// on a terminal, plain lines otherwise (a CI log, a pipe).
func newProgress(env Env, quiet bool, secrets report.Secrets) Progress {
	switch {
	case quiet:
		return quietProgress{}
	case env.isTTY():
		return newBarProgress(env.Stderr, secrets)
	}
	return newLineProgress(env.Stderr, secrets)
}

func (e Env) isTTY() bool {
	if e.TTY != nil {
		return e.TTY()
	}
	f, ok := e.Stderr.(*os.File)
	if !ok || os.Getenv("TERM") == "dumb" {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

type quietProgress struct{}

func (quietProgress) Start(int)      {}
func (quietProgress) Spec(SpecEvent) {}

// lineProgress prints one plain line per finished spec: readable in a CI
// log and on a terminal alike.
type lineProgress struct {
	mu      sync.Mutex
	w       io.Writer
	secrets report.Secrets
	total   int
	eta     etaClock
}

func newLineProgress(w io.Writer, secrets report.Secrets) *lineProgress {
	return &lineProgress{w: w, secrets: secrets}
}

func (p *lineProgress) Start(total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total = total
	p.eta.start(time.Now())
	fmt.Fprintf(p.w, "running %d specs\n", total)
}

// SpecStart prints a line only before a wait on a server timer, so a CI
// log shows why nothing happens for minutes.
func (p *lineProgress) SpecStart(s SpecStart) {
	if s.Wait <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.w, p.secrets.String(fmt.Sprintf("[%d/%d] waiting up to %v on a server timer  %s  %s",
		s.N, p.total, s.Wait.Round(time.Second), strings.Join(s.IDs, ","), s.Text)))
}

func (p *lineProgress) Spec(e SpecEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.w, p.secrets.String(specLine(e, p.total)))
	// Every tenth of the run, how long the rest may take.
	if step := max(p.total/10, 1); e.N%step == 0 && e.N < p.total {
		if left := p.eta.left(time.Now(), e.N, p.total); left != "" {
			fmt.Fprintf(p.w, "%d of %d specs done, %s\n", e.N, p.total, left)
		}
	}
}

func (p *lineProgress) Step(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.w, name)
}

func (p *lineProgress) Done() {}

func specLine(e SpecEvent, total int) string {
	width := len(fmt.Sprint(max(total, e.N)))
	line := fmt.Sprintf("[%*d/%d] %-14s %s  %s", width, e.N, total, e.Verdict, strings.Join(e.IDs, ","), e.Text)
	if e.Reason != "" && e.Verdict != verdict.Conformant {
		line += "  (" + firstLine(flagHints(e.Reason)) + ")"
	}
	return line
}

// etaClock estimates the time left from the pace so far: specs against
// a distant server take round trips, so the first specs tell how far it
// is.
type etaClock struct{ began time.Time }

func (c *etaClock) start(now time.Time) { c.began = now }

// left says "about 1m20s left" after done of total specs, or "" before
// enough specs ran to tell.
func (c *etaClock) left(now time.Time, done, total int) string {
	if c.began.IsZero() || done < 5 || done >= total {
		return ""
	}
	per := now.Sub(c.began) / time.Duration(done)
	return "about " + (per * time.Duration(total-done)).Round(time.Second).String() + " left"
}

// countdown says how long the current spec may still take: the server
// timer it waits on when known, else its time limit once it runs long.
func countdown(s SpecStart, elapsed time.Duration) string {
	left := func(d time.Duration) string { return (d - elapsed).Round(time.Second).String() }
	switch {
	case s.Wait > 0 && elapsed < s.Wait:
		return "server timer: " + left(s.Wait) + " left"
	case s.Wait > 0 && s.Timeout > elapsed:
		return "past the server timer, time limit in " + left(s.Timeout)
	case elapsed >= 3*time.Second && s.Timeout > elapsed:
		return fmt.Sprintf("%v, time limit in %s", elapsed.Round(time.Second), left(s.Timeout))
	}
	return ""
}

// barProgress is the live display on a terminal: a bar with n of m, the
// requirement being checked and a countdown while a spec waits. Deviations
// are printed above the bar as they happen.
type barProgress struct {
	mu      sync.Mutex
	w       io.Writer
	secrets report.Secrets
	bar     *progressbar.ProgressBar
	total   int
	done    int
	eta     etaClock
	cur     *SpecStart
	since   time.Time
	stop    chan struct{}
	stopped sync.Once
	wg      sync.WaitGroup
}

func newBarProgress(w io.Writer, secrets report.Secrets) *barProgress {
	return &barProgress{w: w, secrets: secrets, stop: make(chan struct{})}
}

func (p *barProgress) Start(total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total = total
	p.eta.start(time.Now())
	p.bar = progressbar.NewOptions(total,
		progressbar.OptionSetWriter(p.w),
		progressbar.OptionSetWidth(20),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionThrottle(0),
		progressbar.OptionSetRenderBlankState(true),
	)
	p.wg.Add(1)
	go p.tick()
}

func (p *barProgress) tick() {
	defer p.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			p.describe()
			p.mu.Unlock()
		}
	}
}

// describe sets the bar's text; the caller holds mu.
func (p *barProgress) describe() {
	if p.bar == nil || p.cur == nil {
		return
	}
	const maxText = 48
	text := p.cur.Text
	if r := []rune(text); len(r) > maxText {
		text = string(r[:maxText]) + "…"
	}
	d := strings.Join(p.cur.IDs, ",") + " " + text
	if c := countdown(*p.cur, time.Since(p.since)); c != "" {
		d += "  [" + c + "]"
	}
	if left := p.eta.left(time.Now(), p.done, p.total); left != "" {
		d += "  (" + left + ")"
	}
	p.bar.Describe(p.secrets.String(d))
}

func (p *barProgress) SpecStart(s SpecStart) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cur, p.since = &s, time.Now()
	p.describe()
}

func (p *barProgress) Spec(e SpecEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar == nil {
		return
	}
	if e.Verdict == verdict.Deviates || e.Verdict == verdict.Error {
		_ = p.bar.Clear()
		fmt.Fprintln(p.w, p.secrets.String(specLine(e, p.total)))
	}
	p.cur = nil
	p.done++
	_ = p.bar.Add(1)
}

func (p *barProgress) Step(name string) {
	p.finish()
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.w, name+" …")
}

func (p *barProgress) Done() { p.finish() }

func (p *barProgress) finish() {
	p.stopped.Do(func() {
		close(p.stop)
		p.wg.Wait()
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.bar != nil {
			_ = p.bar.Finish()
			fmt.Fprintf(p.w, "ran %d specs\n", p.total)
		}
	})
}
