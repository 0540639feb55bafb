package report

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// chromium returns Debian's headless browser, or skips: .ci/run installs
// it, so CI fails instead of skipping when it is missing.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed but CI must render the HTML report (apt-get install chromium)")
	}
	t.Skip("chromium is not installed (apt-get install chromium)")
	return ""
}

// runChromium renders file in a headless browser that may not reach the
// network, so a report that needed an external asset would show it.
func runChromium(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--proxy-server=127.0.0.1:9", "--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return out
}

// TestHTMLRendersInChromium renders a report with a deviation in headless
// Chromium: the DOM must hold the summary, every statement and the
// evidence, and the screenshot must show a page rather than a blank one.
func TestHTMLRendersInChromium(t *testing.T) {
	bin := chromium(t)
	r := build(t)
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	var buf bytes.Buffer
	if err := Encode(&buf, HTML, r); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(page, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	url := "file://" + page

	dom := string(runChromium(t, bin, "--dump-dom", url))
	for _, want := range []string{"POP3 conformance report", "2.1.1", "RFC1939-3-keywords", "deviates", "expected +OK"} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered DOM lacks %q", want)
		}
	}

	shot := filepath.Join(dir, "shot.png")
	runChromium(t, bin, "--window-size=1280,1600", "--screenshot="+shot, url)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if colours := distinctColours(img, 64); colours < 8 {
		t.Errorf("the screenshot has %d distinct colours: the page rendered blank", colours)
	}
}

// distinctColours counts colours on a coarse grid, enough to tell a page
// of text and tables from an empty one.
func distinctColours(img image.Image, step int) int {
	seen := map[[3]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += step / 8 {
		for x := b.Min.X; x < b.Max.X; x += step / 8 {
			r, g, bl, _ := img.At(x, y).RGBA()
			seen[[3]uint32{r >> 12, g >> 12, bl >> 12}] = true
		}
	}
	return len(seen)
}
