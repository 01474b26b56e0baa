package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
)

// BuildInfo is stamped into the binary at build time (-ldflags -X).
type BuildInfo struct {
	Version string
	Commit  string
	Date    string
}

// Resolve fills what the linker did not stamp from the module's build info.
func (b BuildInfo) Resolve() BuildInfo {
	if bi, ok := debug.ReadBuildInfo(); ok {
		if b.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			b.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && b.Commit == "" {
				b.Commit = s.Value
			}
		}
	}
	if b.Version == "" {
		b.Version = "dev"
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	return b
}

func (a *App) runVersion(_ context.Context, inv *invocation) error {
	b := a.Build
	if inv.jsonOut {
		doc, _ := json.Marshal(map[string]string{
			"tool": "keyescrow", "version": b.Version, "commit": b.Commit, "date": b.Date,
			"go": runtime.Version(), "os": runtime.GOOS, "arch": runtime.GOARCH,
		})
		_, err := fmt.Fprintf(inv.stdout, "%s\n", doc)
		return err
	}
	_, err := fmt.Fprintf(inv.stdout, "keyescrow %s (commit %s, %s, %s/%s)\n", b.Version, b.Commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return err
}
