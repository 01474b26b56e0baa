package docstest

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// root is the repository's top folder (the one holding go.mod).
func root(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's folder")
		}
		dir = parent
	}
}

// pages returns README.md and every docs/*.md, relative to root.
func pages(t *testing.T, top string) []string {
	t.Helper()
	docs, err := filepath.Glob(filepath.Join(top, "docs", "*.md"))
	if err != nil || len(docs) == 0 {
		t.Fatalf("no docs/*.md: %v", err)
	}
	out := []string{"README.md"}
	for _, d := range docs {
		out = append(out, filepath.ToSlash(strings.TrimPrefix(d, top+string(filepath.Separator))))
	}
	return out
}

// The pages other parts of the project own; the README and the index link
// them, so they must exist.
var required = []string{"docs/security.md", "docs/faults.md", "docs/host-and-lock.md"}

var (
	fence    = regexp.MustCompile("(?m)^\\s*```")
	codeSpan = regexp.MustCompile("`[^`\n]*`")
	link     = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	refDef   = regexp.MustCompile(`(?m)^\s*\[[^\]]+\]:\s*(\S+)`)
	heading  = regexp.MustCompile(`(?m)^#{1,6}\s+(.+?)\s*#*\s*$`)
	htmlID   = regexp.MustCompile(`<a\s+(?:name|id)="([^"]+)"`)
)

// withoutFences is md without its fenced code blocks, where a line
// starting with # is no heading.
func withoutFences(md string) string {
	parts := fence.Split(md, -1)
	var b strings.Builder
	for i, p := range parts {
		if i%2 == 0 {
			b.WriteString(p)
			b.WriteString("\n")
		}
	}
	return b.String()
}

// prose is md without code blocks and code spans, where a bracket-paren
// pair is not a link.
func prose(md string) string { return codeSpan.ReplaceAllString(withoutFences(md), "``") }

// links returns the link targets of a Markdown page.
func links(md string) []string {
	text := prose(md)
	var out []string
	for _, m := range link.FindAllStringSubmatch(text, -1) {
		out = append(out, m[1])
	}
	for _, m := range refDef.FindAllStringSubmatch(text, -1) {
		out = append(out, m[1])
	}
	return out
}

// slug is GitHub's anchor for a heading: lower case, punctuation dropped
// (letters, digits, spaces, '-' and '_' kept), spaces turned into '-'.
func slug(h string) string {
	h = strings.ReplaceAll(h, "`", "")
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteRune('-')
		}
	}
	return b.String()
}

// anchors returns every anchor a page defines, numbering repeated headings
// as GitHub does (x, x-1, x-2).
func anchors(md string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	for _, m := range heading.FindAllStringSubmatch(withoutFences(md), -1) {
		s := slug(m[1])
		if n := seen[s]; n > 0 {
			out[fmt.Sprintf("%s-%d", s, n)] = true
		} else {
			out[s] = true
		}
		seen[s]++
	}
	for _, m := range htmlID.FindAllStringSubmatch(md, -1) {
		out[m[1]] = true
	}
	return out
}

func TestEveryRelativeLinkAndAnchorResolves(t *testing.T) {
	top := root(t)
	for _, r := range required {
		if _, err := os.Stat(filepath.Join(top, r)); err != nil {
			t.Errorf("%s is linked from the README and the docs index but missing: %v", r, err)
		}
	}
	cache := map[string]string{}
	read := func(rel string) (string, error) {
		if s, ok := cache[rel]; ok {
			return s, nil
		}
		b, err := os.ReadFile(filepath.Join(top, filepath.FromSlash(rel)))
		cache[rel] = string(b)
		return string(b), err
	}
	checked := 0
	for _, page := range pages(t, top) {
		md, err := read(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, target := range links(md) {
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			checked++
			file, frag, _ := strings.Cut(target, "#")
			dest := page
			if file != "" {
				dest = filepath.ToSlash(filepath.Join(filepath.Dir(page), file))
				if strings.HasPrefix(dest, "../") {
					t.Errorf("%s: %s leaves the repository", page, target)
					continue
				}
				if _, err := os.Stat(filepath.Join(top, filepath.FromSlash(dest))); err != nil {
					t.Errorf("%s: link %s: %s does not exist", page, target, dest)
					continue
				}
			}
			if frag == "" {
				continue
			}
			if !strings.HasSuffix(dest, ".md") {
				t.Errorf("%s: link %s: an anchor into a file that is not Markdown", page, target)
				continue
			}
			other, err := read(dest)
			if err != nil {
				t.Errorf("%s: link %s: %v", page, target, err)
				continue
			}
			if !anchors(other)[frag] {
				t.Errorf("%s: link %s: %s has no heading with anchor #%s", page, target, dest, frag)
			}
		}
	}
	if checked < 20 {
		t.Errorf("only %d relative links found: the link parser is broken", checked)
	}
}

func TestTheReadmeAndTheIndexLinkEveryDocsPage(t *testing.T) {
	top := root(t)
	all := pages(t, top)[1:]
	for _, r := range required {
		if !slices.Contains(all, r) {
			all = append(all, r)
		}
	}
	for _, index := range []string{"README.md", "docs/README.md"} {
		b, err := os.ReadFile(filepath.Join(top, filepath.FromSlash(index)))
		if err != nil {
			t.Fatal(err)
		}
		linked := map[string]bool{}
		for _, target := range links(string(b)) {
			file, _, _ := strings.Cut(target, "#")
			linked[filepath.ToSlash(filepath.Join(filepath.Dir(index), file))] = true
		}
		for _, p := range all {
			if p != index && !linked[p] {
				t.Errorf("%s does not link %s", index, p)
			}
		}
	}
}
