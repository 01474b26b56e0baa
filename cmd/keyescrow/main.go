// Command keyescrow backs up SQL Server's service master key to write-once
// storage in another region and proves every copy before it says "ok".
// main stays thin: a signal-aware context, the CLI, the exit code.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/keyescrow/keyescrow/internal/cli"
	"github.com/keyescrow/keyescrow/internal/deadline"
	"github.com/keyescrow/keyescrow/internal/exitcode"
)

// Stamped by the build: -ldflags "-X main.version=… -X main.commit=… -X main.date=…".
var (
	version string
	commit  string
	date    string
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	app := cli.New(cli.BuildInfo{Version: version, Commit: commit, Date: date}.Resolve())
	// The last resort: a run still going Grace after timeouts.run is
	// stopped here, whatever blocks it (exit deadline.WatchdogCode).
	dog := deadline.NewWatchdog(os.Stderr, os.Exit)
	app.RunLimit = dog.Arm
	err := app.Run(ctx, os.Args[1:])
	dog.Stop()
	interrupted := ctx.Err() != nil
	stop()
	code := exitcode.Code(err)
	if interrupted && code != exitcode.OK {
		code = exitcode.Interrupted
	}
	os.Exit(code)
}
