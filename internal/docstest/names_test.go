package docstest

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// walkText calls fn for every regular file under the given paths of the
// repository (files or folders), with its path relative to the top.
func walkText(t *testing.T, top string, paths []string, fn func(rel, text string)) {
	t.Helper()
	for _, p := range paths {
		err := filepath.WalkDir(filepath.Join(top, p), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if d.Name() == "node_modules" || d.Name() == "testdata" {
					return filepath.SkipDir
				}
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(top, path)
			fn(filepath.ToSlash(rel), string(b))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestNothingUsersGetNamesAFileOutsideTheRepository(t *testing.T) {
	top := root(t)
	design, shared := "DESIGN"+".md", "../"+"shared" // spelt apart so this file does not match itself
	n := 0
	walkText(t, top, []string{"cmd", "internal", "deploy", "docs", "README.md", "Makefile", ".ci", ".goreleaser.yaml"}, func(rel, text string) {
		n++
		if strings.Contains(text, design) || strings.Contains(text, shared) {
			t.Errorf("%s names %s or %s, which users do not have: point at a page under docs/", rel, design, shared)
		}
	})
	if n < 50 {
		t.Errorf("only %d files walked", n)
	}
}

var docsRef = regexp.MustCompile(`docs/[a-z0-9-]+\.md`)

func TestMessagesPointAtDocsPagesThatShip(t *testing.T) {
	top := root(t)
	release, err := os.ReadFile(filepath.Join(top, ".goreleaser.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^\s*- src: docs/\*\.md\s*$`).Match(release) {
		t.Error(".goreleaser.yaml does not ship docs/*.md: messages and the README point there")
	}
	refs := 0
	walkText(t, top, []string{"cmd", "internal", "deploy"}, func(rel, text string) {
		for _, ref := range docsRef.FindAllString(text, -1) {
			refs++
			if _, err := os.Stat(filepath.Join(top, filepath.FromSlash(ref))); err != nil {
				t.Errorf("%s points at %s, which does not exist", rel, ref)
			}
		}
	})
	if refs == 0 {
		t.Error("no message points at a docs page: the pattern is broken")
	}
}
