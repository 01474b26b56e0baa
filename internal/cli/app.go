// Package cli owns keyescrow's command line: parsing global and command
// flags, loading the configuration, wiring the pipeline's dependencies (SQL
// Server, destinations, lock, logger) and printing results on stdout and
// logs on stderr. It never exits the process: Run returns an error whose
// exit code package exitcode knows.
package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/keyescrow/keyescrow/internal/config"
	"github.com/keyescrow/keyescrow/internal/deadline"
	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/secret"
)

// App is the command line with everything it touches injected, so tests can
// drive it in-process as well as through the built binary.
type App struct {
	Stdout, Stderr io.Writer
	Stdin          io.Reader
	Env            config.Env
	EnvList        config.EnvList
	Clock          func() time.Time
	Hostname       func() (string, error)
	Build          BuildInfo
	// RunLimit, when set, is told how long the command may still run
	// (timeouts.run less what has passed) once the configuration is
	// loaded: main arms its last-resort watchdog with it.
	RunLimit func(time.Duration)
}

// New returns the App for the real process.
func New(build BuildInfo) *App {
	return &App{
		Stdout: os.Stdout, Stderr: os.Stderr, Stdin: os.Stdin,
		Env: config.OSEnv(), EnvList: config.OSEnvList(),
		Clock: time.Now, Hostname: os.Hostname, Build: build,
	}
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	usage   string
	run     func(context.Context, *invocation) error // runs it
}

func (a *App) commands() []command {
	return []command{
		{name: "backup", summary: "export the service master key and archive it to every destination", usage: "keyescrow backup [flags]", run: a.runBackup},
		{name: "archive", summary: "archive an existing key file to every destination", usage: "keyescrow archive [--host NAME] [--instance NAME] FILE", run: a.runArchive},
		{name: "check", summary: "preflight only: SQL Server and every destination, writing nothing", usage: "keyescrow check [flags]", run: a.runCheck},
		{name: "init-key", summary: "create a receipt signing key: the private half to --out (owner-only), the public half on stdout to pin", usage: "keyescrow init-key --out FILE [--json]", run: a.runInitKey},
		{name: "new-identity", summary: "make an age identity that opens sealed passwords (public key to stdout)", usage: "keyescrow new-identity --out FILE", run: a.runNewIdentity},
		{name: "version", summary: "print version, commit and Go version", usage: "keyescrow version", run: a.runVersion},
		{name: "inventory", summary: "the server's keys and what protects what, each with its newest proven copy (exit 8: a required key has none of its current key)", usage: "keyescrow inventory [--json]", run: a.runInventory},
		{name: "list", summary: "list the archived copies at each destination, newest first", usage: "keyescrow list [--destination NAME] [--host NAME] [--instance NAME] [--kind KIND] [--database NAME] [--name CERTIFICATE] [--limit N] [--json]", run: a.runList},
		{name: "verify", summary: "audit the archive: newest copy younger than max_age, newest copies re-hashed, locks in force", usage: "keyescrow verify [--destination NAME] [--host NAME | --all-hosts] [--instance NAME] [--copies N]", run: a.runVerify},
		{name: "restore", summary: "fetch a copy, verify it, write it owner-only; with --apply restore it into SQL Server", usage: "keyescrow restore [--host NAME] [--instance NAME] [--kind KIND [--database NAME] [--name CERT]] [--destination NAME] [--version-id ID | --at TIME] [--out FILE] [--apply [--force --confirm-force SERVERNAME]]", run: a.runRestore},
		{name: "drill", summary: "restore drill: the newest copy into the scratch SQL Server of the drill section (--kind certificate alone: every TDE certificate)", usage: "keyescrow drill [--host NAME] [--instance NAME] [--kind KIND [--database NAME] [--name CERT]] [--destination NAME]", run: a.runDrill},
	}
}

// Run parses args (without the program name) and runs the command.
func (a *App) Run(ctx context.Context, args []string) error {
	inv, err := a.parse(args)
	if err != nil {
		if err == errHelp {
			return nil
		}
		fmt.Fprintf(a.Stderr, "keyescrow: %v\n", err)
		return exitcode.Wrap(exitcode.Usage, err)
	}
	inv.began = time.Now()
	inv.limits = deadline.Default()
	inv.scrub = secret.NewScrubber()
	inv.stderr = inv.scrub.Writer(a.Stderr)
	inv.stdout = inv.scrub.Writer(a.Stdout)
	if inv.log, err = newLogger(inv.stderr, inv.scrub, inv.logLevel, inv.logFormat); err != nil {
		fmt.Fprintf(a.Stderr, "keyescrow: %v\n", err)
		return exitcode.Wrap(exitcode.Usage, err)
	}
	return inv.cmd.run(ctx, inv)
}
