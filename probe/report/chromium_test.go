package report

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
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
	checkIndexLinks(t, dom, r)

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

// checkIndexLinks parses the DOM the browser built and follows every
// link of the deviations index: its target id must exist, be a table row,
// and be the row of that deviating statement; and every deviating
// statement must be in the index.
func checkIndexLinks(t *testing.T, dom string, r *Report) {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(dom))
	if err != nil {
		t.Fatalf("parsing the rendered DOM: %v", err)
	}
	byID := map[string]*html.Node{}
	var links []string
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode {
			continue
		}
		if id := attr(n, "id"); id != "" {
			byID[id] = n
		}
		if n.DataAtom == atom.A && n.Parent != nil && n.Parent.DataAtom == atom.Li &&
			n.Parent.Parent != nil && attr(n.Parent.Parent, "class") == "index" {
			links = append(links, attr(n, "href"))
		}
	}
	var want []string
	for _, st := range r.Deviating() {
		want = append(want, "#"+st.ID)
	}
	if len(want) == 0 {
		t.Fatal("the test report has no deviation to index")
	}
	if !slices.Equal(links, want) {
		t.Errorf("index links %q, want one per deviating statement %q", links, want)
	}
	for _, href := range links {
		id := strings.TrimPrefix(href, "#")
		row := byID[id]
		switch {
		case row == nil:
			t.Errorf("index link %s: no element has id %q", href, id)
		case row.DataAtom != atom.Tr:
			t.Errorf("index link %s points at a <%s>, not a statement row", href, row.Data)
		case !strings.Contains(attr(row, "class"), "v-deviates") && !strings.Contains(attr(row, "class"), "v-error"):
			t.Errorf("index link %s points at a row of class %q, not a deviating one", href, attr(row, "class"))
		case firstCellText(row) != id:
			t.Errorf("index link %s points at the row of %q", href, firstCellText(row))
		}
	}
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// firstCellText is the text of a row's first cell: the statement ID.
func firstCellText(row *html.Node) string {
	for c := range row.ChildNodes() {
		if c.DataAtom == atom.Td {
			var b strings.Builder
			for d := range c.Descendants() {
				if d.Type == html.TextNode {
					b.WriteString(d.Data)
				}
			}
			return strings.TrimSpace(b.String())
		}
	}
	return ""
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
