//go:build unix

package state

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaultFollowsSystemdThenTheAccount(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"systemd's StateDirectory= wins", map[string]string{"STATE_DIRECTORY": "/var/lib/keyescrow:/var/lib/other", "HOME": "/root"}, "/var/lib/keyescrow"},
		{"a relative STATE_DIRECTORY is ignored", map[string]string{"STATE_DIRECTORY": "rel", "XDG_STATE_HOME": "/x"}, ""},
	}
	if os.Geteuid() == 0 {
		cases = append(cases, struct {
			name string
			env  map[string]string
			want string
		}{"root uses /var/lib/keyescrow whatever HOME says", map[string]string{"HOME": "/root", "XDG_STATE_HOME": "/root/.st"}, "/var/lib/keyescrow"})
	} else {
		cases = append(cases, struct {
			name string
			env  map[string]string
			want string
		}{"another account uses XDG_STATE_HOME", map[string]string{"HOME": "/home/u", "XDG_STATE_HOME": "/home/u/.st"}, "/home/u/.st/keyescrow"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Default(envOf(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			if tc.want != "" && got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestWriteThenReadAndRefusals(t *testing.T) {
	p := filepath.Join(t.TempDir(), "st")
	if _, err := Open(p, false); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a missing folder without create: %v", err)
	}
	d, err := Open(p, true)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.ReadFile("rec", 100); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a missing file: %v", err)
	}
	for _, body := range []string{"first", "second, longer"} {
		if err := d.WriteFile("rec", []byte(body)); err != nil {
			t.Fatal(err)
		}
		if b, err := d.ReadFile("rec", 100); err != nil || string(b) != body {
			t.Fatalf("read back %q %v, want %q", b, err, body)
		}
	}
	if fi, _ := os.Stat(filepath.Join(p, "rec")); fi.Mode().Perm() != 0o600 {
		t.Errorf("record mode %v", fi.Mode().Perm())
	}
	if _, err := d.ReadFile("rec", 3); !errors.Is(err, ErrUnsafe) {
		t.Errorf("a record over the limit: %v", err)
	}
	other := filepath.Join(t.TempDir(), "planted")
	_ = os.WriteFile(other, []byte("planted"), 0o600)
	_ = os.Symlink(other, filepath.Join(p, "link"))
	if _, err := d.ReadFile("link", 100); !errors.Is(err, ErrUnsafe) {
		t.Errorf("a symbolic link is read: %v", err)
	}
	// A symbolic link planted where a record is written is replaced, its
	// target untouched.
	if err := d.WriteFile("link", []byte("mine")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(other); string(b) != "planted" {
		t.Errorf("the link's target was written: %q", b)
	}
}
