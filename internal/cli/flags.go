package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/keyescrow/keyescrow/internal/config"
	"github.com/keyescrow/keyescrow/internal/deadline"
	"github.com/keyescrow/keyescrow/internal/secret"
	"log/slog"
)

var errHelp = errors.New("help")

// invocation is one parsed command line and what the run builds from it.
type invocation struct {
	app  *App
	cmd  command
	args []string // positional arguments after the command

	configPath string
	jsonOut    bool
	logLevel   string
	logFormat  string
	sets       []string // --set KEY=VALUE, in order

	instance string // archive, list, verify, restore, drill --instance
	host     string // archive, list, verify, restore, drill --host

	destination  string // list, verify, restore, drill --destination
	allHosts     bool   // verify --all-hosts
	copies       int    // verify --copies (0 = verify.copies)
	limit        int    // list --limit
	noReceipts   bool   // list --no-receipts
	versionID    string // restore --version-id
	at           string // restore --at
	out          string // restore --out
	apply        bool   // restore --apply
	force        bool   // restore --force
	confirmForce string // restore --confirm-force
	identity     string // restore, drill --identity (age identity file)
	passwordOut  string // restore --password-out
	kind         string // restore, drill --kind
	database     string // restore, drill --database
	itemName     string // restore, drill --name

	metricsFile string          // from the loaded configuration
	cfg         *config.Config  // the loaded configuration
	hostIDOnce  *hostID         // the host identity, once found
	limits      deadline.Limits // from the loaded configuration
	began       time.Time       // when the command started (monotonic)

	scrub          *secret.Scrubber
	stdout, stderr io.Writer
	log            *slog.Logger
}

// multiFlag collects a repeatable flag.
type multiFlag struct{ vals *[]string }

func (m multiFlag) String() string     { return "" }
func (m multiFlag) Set(v string) error { *m.vals = append(*m.vals, v); return nil }

func (inv *invocation) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&inv.configPath, "config", "", "configuration file (default: $KEYESCROW_CONFIG)")
	fs.BoolVar(&inv.jsonOut, "json", false, "print the result on stdout as one JSON document")
	fs.StringVar(&inv.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&inv.logFormat, "log-format", "text", "log format on stderr: text or json")
	fs.Var(multiFlag{&inv.sets}, "set", "override a configuration key: --set backup.keep_local=true (repeatable; secrets are refused)")
	switch name {
	case "archive":
		fs.StringVar(&inv.instance, "instance", "unknown", "SQL Server instance the key file belongs to (for the archive's name and receipt)")
		fs.StringVar(&inv.host, "host", "", "host the key file belongs to (default: the host key, else the identity backup recorded, else this host's name)")
	case "list":
		fs.StringVar(&inv.host, "host", "", "only this host's copies (default: every host)")
		fs.StringVar(&inv.instance, "instance", "", "only this instance's copies (default: every instance)")
	case "verify", "restore", "drill":
		fs.StringVar(&inv.host, "host", "", "the host whose copies to use, as the receipts name it (default: the host key, else the identity backup recorded, else this host's name)")
		fs.StringVar(&inv.instance, "instance", "", "the SQL Server instance (default: every instance of the host; restore and drill: the instance backup recorded, and they need it when the host has several)")
	}
	switch name {
	case "list", "verify", "restore", "drill":
		fs.StringVar(&inv.destination, "destination", "", "use only this destination (by name); default: every destination (restore, drill: the first whose copy verifies)")
	}
	switch name {
	case "init-key":
		fs.StringVar(&inv.out, "out", "", "where to write the new private signing key (create-only, owner-only), e.g. /etc/keyescrow/signing.key")
	case "new-identity":
		fs.StringVar(&inv.out, "out", "", "the new identity file (create-only, owner-only)")
	case "restore", "drill":
		fs.StringVar(&inv.identity, "identity", "", "age identity file that opens sealed passwords (default: $KEYESCROW_IDENTITY_FILE)")
		fs.StringVar(&inv.kind, "kind", "", "the key: service-master-key (default), database-master-key (with --database) or certificate (with --database and --name)")
		fs.StringVar(&inv.database, "database", "", "the database of a database master key or certificate (a TDE certificate is in master)")
		fs.StringVar(&inv.itemName, "name", "", "the certificate's name (--kind certificate)")
	}
	switch name {
	case "list":
		fs.StringVar(&inv.kind, "kind", "", "only copies of this kind: service-master-key, database-master-key or certificate (default: every kind)")
		fs.StringVar(&inv.database, "database", "", "only the copies of this database's master key and certificates")
		fs.StringVar(&inv.itemName, "name", "", "only the copies of the certificate of this name")
		fs.IntVar(&inv.limit, "limit", 0, "show at most this many of the newest copies per host and instance (0 = all)")
		fs.BoolVar(&inv.noReceipts, "no-receipts", false, "do not read the receipts (one request per copy): the SHA-256 and retention columns stay empty")
	case "verify":
		fs.BoolVar(&inv.allHosts, "all-hosts", false, "fleet mode: every host and instance under each destination's prefix, with the age of its newest proven copy (nothing is downloaded)")
		fs.IntVar(&inv.copies, "copies", 0, "how many of the newest copies to read back and re-hash (default: verify.copies, 3)")
	case "restore":
		fs.StringVar(&inv.versionID, "version-id", "", "restore this version (keyescrow list shows the ids)")
		fs.StringVar(&inv.at, "at", "", "restore the newest copy stored at or before this time (RFC 3339, e.g. 2026-11-01T00:00:00Z, or a date 2026-11-01 meaning its end)")
		fs.StringVar(&inv.out, "out", "", "write the verified copy to this new file (create-only, owner-only); a certificate's .pvk goes beside it, with .pvk for its .cer extension")
		fs.StringVar(&inv.passwordOut, "password-out", "", "with a sealed password: also write the opened password to this new file (create-only, owner-only), for a RESTORE run by hand")
		fs.BoolVar(&inv.apply, "apply", false, "restore the verified copy into the configured SQL Server (RESTORE SERVICE MASTER KEY, RESTORE MASTER KEY, or CREATE CERTIFICATE … FROM FILE)")
		fs.BoolVar(&inv.force, "force", false, "with --apply: RESTORE … FORCE (loses the secrets the restored key cannot decrypt; needs --confirm-force)")
		fs.StringVar(&inv.confirmForce, "confirm-force", "", "with --apply --force: the SQL Server's name (@@SERVERNAME), typed to confirm the data loss")
	}
	return fs
}

// parse finds the command (global flags may stand before or after it) and
// parses every flag, keeping positional arguments in order.
func (a *App) parse(args []string) (*invocation, error) {
	inv := &invocation{app: a}
	name, rest, err := splitCommand(args, a.valueFlags())
	if err != nil {
		return nil, err
	}
	if name == "" || name == "help" {
		if name == "" && !hasHelp(args) {
			a.usage(a.Stderr) // an error: cron mails stderr, stdout stays clean
			return nil, errors.New("no command given: see the list above")
		}
		a.usage(a.Stdout)
		return nil, errHelp
	}
	for _, c := range a.commands() {
		if c.name == name {
			inv.cmd = c
		}
	}
	if inv.cmd.name == "" {
		return nil, fmt.Errorf("unknown command %q: run keyescrow help for the list", name)
	}
	fs := inv.flagSet(name)
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				a.commandUsage(a.Stdout, inv)
				return nil, errHelp
			}
			return nil, fmt.Errorf("%s: %v", name, err)
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		inv.args = append(inv.args, rest[0])
		rest = rest[1:]
	}
	return inv, nil
}

// valueFlags is every flag, of any command, that takes a separate value.
// It is read off the flag sets themselves, so it cannot drift from them.
func (a *App) valueFlags() map[string]bool {
	out := map[string]bool{}
	for _, c := range a.commands() {
		(&invocation{}).flagSet(c.name).VisitAll(func(f *flag.Flag) {
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !b.IsBoolFlag() {
				out[f.Name] = true
			}
		})
	}
	return out
}

// splitCommand returns the first argument that is neither a flag nor a
// flag's value, and the arguments without it.
func splitCommand(args []string, valueFlags map[string]bool) (string, []string, error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return "", nil, errors.New("-- before the command")
		}
		if strings.HasPrefix(a, "-") {
			n := strings.TrimLeft(a, "-")
			if !strings.Contains(n, "=") && valueFlags[n] {
				i++
			}
			continue
		}
		rest := append(append([]string{}, args[:i]...), args[i+1:]...)
		return a, rest, nil
	}
	return "", nil, nil
}

func hasHelp(args []string) bool {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			return true
		}
	}
	return false
}

func (a *App) usage(w io.Writer) {
	var b strings.Builder
	b.WriteString("keyescrow: back up SQL Server's service master key to write-once storage in another region, and prove it.\n\nUsage: keyescrow COMMAND [flags]\n\nCommands:\n")
	for _, c := range a.commands() {
		fmt.Fprintf(&b, "  %-12s %s\n", c.name, c.summary)
	}
	b.WriteString("\nGlobal flags:\n")
	inv := &invocation{}
	fs := inv.flagSet("keyescrow")
	fs.SetOutput(&b)
	fs.PrintDefaults()
	b.WriteString("\nExit codes: 0 ok, 1 internal, 2 usage/config, 3 SQL Server, 4 policy, 5 transfer, 6 verification, 7 locked, 8 stale, 130 interrupted.\n")
	_, _ = io.WriteString(w, b.String())
}

func (a *App) commandUsage(w io.Writer, inv *invocation) {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: %s\n\n%s\n\nFlags:\n", orName(inv.cmd), inv.cmd.summary)
	fs := inv.flagSet(inv.cmd.name)
	fs.SetOutput(&b)
	fs.PrintDefaults()
	_, _ = io.WriteString(w, b.String())
}

func orName(c command) string {
	if c.usage != "" {
		return c.usage
	}
	return "keyescrow " + c.name
}
