package maildrop

import (
	"fmt"
	"os"
	"path/filepath"
)

// tmpPrefix marks files that are still being written; Open removes them,
// since a crash may leave one behind and it never became visible.
const tmpPrefix = ".tmp-"

// writeFileAtomic writes data to a temporary file in the same directory,
// fsyncs it, renames it over name and fsyncs the directory, so a reader (or
// a restart after a crash) sees either the old content or the new one.
// fail, when not nil, may make the write fail after the data was written
// and before the rename (Options.FailWrite).
func writeFileAtomic(name string, data []byte, perm os.FileMode, fail func(string) error) error {
	dir := filepath.Dir(name)
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if fail != nil {
		if err := fail(name); err != nil {
			return fmt.Errorf("write %s: %w", tmp, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, name); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	ok = true
	return syncDir(dir)
}

// syncDir makes a rename or removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}
