package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadmeIsATrueMap: the README's layout table names every package of
// the module and every subcommand of the binary, so a newcomer can find
// each one from it.
func TestReadmeIsATrueMap(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	start := strings.Index(readme, "## Layout")
	if start < 0 {
		t.Fatal("README.md has no Layout section")
	}
	layout := readme[start:]
	if end := strings.Index(layout[1:], "\n## "); end > 0 {
		layout = layout[:end+1]
	}
	root := filepath.Join("..", "..")
	for _, top := range []string{"internal", "cmd"} {
		err := filepath.WalkDir(filepath.Join(root, top), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			dir, _ := filepath.Rel(root, filepath.Dir(path))
			dir = filepath.ToSlash(dir)
			if !strings.Contains(layout, "`"+dir+"`") && !strings.Contains(layout, "(`"+filepath.Base(dir)+"`)") {
				t.Errorf("the README's layout table does not name %s", dir)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, cmd := range []string{"serve", "migrate", "config", "users create-admin", "ledger verify", "reconcile", "jwt-keygen", "version", "sandbox"} {
		if !strings.Contains(errUsage.Error(), strings.Fields(cmd)[0]) {
			t.Errorf("%q is not a subcommand any more; update this test", cmd)
		}
		if !strings.Contains(layout, "`paygate "+cmd+"`") {
			t.Errorf("the README's layout table does not name `paygate %s`", cmd)
		}
	}
}
