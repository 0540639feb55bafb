package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
)

// TestGoInstall installs the command the way the README tells users to,
// `go install <module>/probe/cmd/pop3probe@<version>`, from a fresh
// GOPATH and GOBIN, with this checkout served at a pseudo-version by a
// file-based module proxy. The dependencies come from the local module
// cache's download directory when it holds them, else from the usual
// proxy. The installed binary must be named pop3probe and report that
// version.
func TestGoInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command from a module proxy")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	root := moduleRoot(t, gobin)
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git to list the module's files")
	}
	if _, err := os.Stat(filepath.Join(root, ".git")); err != nil {
		t.Skip("not a git checkout: no module files to serve")
	}
	modPath := modulePath(t, root)
	if first, _, _ := strings.Cut(modPath, "/"); !strings.Contains(first, ".") {
		t.Skipf("module path %q cannot be installed with go install (its first element has no dot)", modPath)
	}
	version := pseudoVersion(t, root)
	tmp := t.TempDir()
	proxy := filepath.Join(tmp, "proxy")
	writeProxy(t, proxy, root, modPath, version)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := filepath.Join(tmp, "bin")
	cmd := exec.CommandContext(ctx, gobin, "install", modPath+"/probe/cmd/pop3probe@"+version)
	cmd.Dir = tmp
	cmd.Env = installEnv(t, gobin, tmp, proxy, bin, modPath)
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go install: %v\n%s", err, out)
	}
	t.Logf("go install took %v", time.Since(start).Round(time.Millisecond))

	out, err := exec.CommandContext(ctx, filepath.Join(bin, "pop3probe"), "version").CombinedOutput()
	if err != nil {
		t.Fatalf("pop3probe version: %v\n%s", err, out)
	}
	if got, want := strings.TrimSpace(string(out)), "pop3probe "+version; got != want {
		t.Errorf("pop3probe version printed %q, want %q", got, want)
	}
}

// moduleRoot is the directory of the go.mod this test belongs to.
func moduleRoot(t *testing.T, gobin string) string {
	t.Helper()
	out, err := exec.Command(gobin, "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Skip("not inside a module")
	}
	return filepath.Dir(gomod)
}

// modulePath reads the module path from go.mod, so the test follows a
// change of it.
func modulePath(t *testing.T, root string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(l), "module "); ok {
			p := strings.TrimSpace(rest)
			if u, err := strconv.Unquote(p); err == nil {
				p = u
			}
			return p
		}
	}
	t.Fatal("go.mod has no module line")
	return ""
}

// pseudoVersion is the version the go command would give HEAD without
// tags: v0.0.0-<commit time>-<12 hex digits of the revision>.
func pseudoVersion(t *testing.T, root string) string {
	t.Helper()
	out := git(t, root, "log", "-1", "--format=%H %ct")
	hash, secs, ok := strings.Cut(strings.TrimSpace(out), " ")
	unix, err := strconv.ParseInt(secs, 10, 64)
	if !ok || err != nil || len(hash) < 12 {
		t.Fatalf("git log: unexpected %q", out)
	}
	return fmt.Sprintf("v0.0.0-%s-%s", time.Unix(unix, 0).UTC().Format("20060102150405"), hash[:12])
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

// writeProxy lays out a GOPROXY directory holding the module at version:
// <escaped module>/@v/<version>.{info,mod,zip} and the version list.
func writeProxy(t *testing.T, proxy, root, modPath, version string) {
	t.Helper()
	dir := filepath.Join(proxy, filepath.FromSlash(escapePath(modPath)), "@v")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := json.Marshal(struct{ Version, Time string }{version, time.Now().UTC().Format(time.RFC3339)})
	if err != nil {
		t.Fatal(err)
	}
	zipData := moduleZip(t, root, modPath, version)
	for name, data := range map[string][]byte{
		version + ".info": info,
		version + ".mod":  gomod,
		version + ".zip":  zipData,
		"list":            []byte(version + "\n"),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// moduleZip zips the git-tracked files of the working tree as
// <module>@<version>/<path>, leaving out what a module zip may not hold:
// nested modules and anything but regular files.
func moduleZip(t *testing.T, root, modPath, version string) []byte {
	t.Helper()
	files := strings.Split(strings.TrimRight(git(t, root, "ls-files", "-z"), "\x00"), "\x00")
	var nested []string
	for _, f := range files {
		if path.Base(f) == "go.mod" && f != "go.mod" {
			nested = append(nested, path.Dir(f)+"/")
		}
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	prefix := modPath + "@" + version + "/"
	for _, f := range files {
		if inAny(f, nested) {
			continue
		}
		fi, err := os.Lstat(filepath.Join(root, filepath.FromSlash(f)))
		if err != nil || !fi.Mode().IsRegular() {
			continue // deleted in the working tree, or a link
		}
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f)))
		if err != nil {
			t.Fatal(err)
		}
		w, err := zw.Create(prefix + f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func inAny(f string, dirs []string) bool {
	for _, d := range dirs {
		if strings.HasPrefix(f, d) {
			return true
		}
	}
	return false
}

// escapePath is the module proxy's case encoding: an upper-case letter
// becomes '!' and its lower case.
func escapePath(p string) string {
	var b strings.Builder
	for _, r := range p {
		if unicode.IsUpper(r) {
			b.WriteByte('!')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// installEnv is a clean Go environment under tmp: fresh GOPATH, module
// cache and GOBIN; the build cache is shared, since it is keyed by
// content. The test's module comes from proxy, with the checksum
// database skipped for it alone (a pseudo-version no one published);
// dependencies come from the local module cache first, verified by the
// module's go.sum.
func installEnv(t *testing.T, gobin, tmp, proxy, bin, modPath string) []string {
	t.Helper()
	out, err := exec.Command(gobin, "env", "GOPROXY", "GOMODCACHE", "GOCACHE").Output()
	if err != nil {
		t.Fatalf("go env: %v", err)
	}
	vals := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(vals) != 3 {
		t.Fatalf("go env: unexpected %q", out)
	}
	upstream, modcache, gocache := vals[0], vals[1], vals[2]
	proxies := []string{"file://" + filepath.ToSlash(proxy)}
	if dl := filepath.Join(modcache, "cache", "download"); isDir(dl) {
		proxies = append(proxies, "file://"+filepath.ToSlash(dl))
	}
	if upstream != "" && upstream != "off" {
		proxies = append(proxies, upstream)
	}
	gopath := filepath.Join(tmp, "gopath")
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "GO") || name == "GOROOT" {
			env = append(env, kv)
		}
	}
	return append(env,
		"GOPATH="+gopath,
		"GOMODCACHE="+filepath.Join(gopath, "pkg", "mod"),
		"GOBIN="+bin,
		"GOCACHE="+gocache,
		"GOPROXY="+strings.Join(proxies, ","),
		"GONOSUMDB="+modPath,
		// The module cache is read-only by default; t.TempDir must be
		// able to remove it.
		"GOFLAGS=-modcacherw",
		"GOWORK=off",
		"GOTOOLCHAIN=local",
		"GO111MODULE=on",
		"GOENV=off",
	)
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
