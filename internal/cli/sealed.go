package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/keyescrow/keyescrow/internal/config"
	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/sealed"
	"github.com/keyescrow/keyescrow/internal/secret"
)

// IdentityFileEnv names the age identity file when --identity is not given.
const IdentityFileEnv = "KEYESCROW_IDENTITY_FILE"

// identities reads the age identities that open sealed passwords: --identity
// FILE, else $KEYESCROW_IDENTITY_FILE; none when neither is set. The file
// is a secret: read with the same limits and checks as the other secret
// files, registered with the scrubber, never quoted.
func (inv *invocation) identities() ([]age.Identity, error) {
	path := inv.identity
	if path == "" {
		path, _ = inv.app.Env(IdentityFileEnv)
	}
	if path == "" {
		return nil, nil
	}
	v, err := inv.readSecret(config.SecretSource{Key: "identity", File: path})
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(v.Reveal(), "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			inv.scrub.Add(secret.New(l))
		}
	}
	ids, err := sealed.ParseIdentities(strings.NewReader(v.Reveal()))
	if err != nil {
		return nil, exitcode.Wrap(exitcode.Usage, fmt.Errorf("identity file %s: %w", path, err))
	}
	return ids, nil
}

// restorePassword reads the static backup password for restore --apply and
// drill. It is required unless passwords may be sealed (backup.seal_to is
// set, or an identity was given): then it is read only when its source is
// configured or its variable is set, for copies made before sealing.
func (inv *invocation) restorePassword(cfg *config.Config, haveIdentity bool) (secret.Value, error) {
	src := cfg.PasswordSource()
	if haveIdentity || len(cfg.Backup.SealTo) > 0 {
		if src.File == "" {
			if v, ok := inv.app.Env(src.Env); !ok || v == "" {
				return secret.Value{}, nil
			}
		}
	}
	return inv.readSecret(src)
}

// runNewIdentity makes an age identity for the people who may open sealed
// passwords: the secret part goes to a new owner-only file (kept offline,
// never on the database host), the public part, for backup.seal_to, to
// stdout.
func (a *App) runNewIdentity(_ context.Context, inv *invocation) error {
	err := a.newIdentity(inv)
	if err != nil {
		inv.logFailure("new-identity failed", err)
	}
	return err
}

func (a *App) newIdentity(inv *invocation) error {
	if len(inv.args) > 0 || inv.out == "" {
		return exitcode.Wrap(exitcode.Usage, errors.New("usage: keyescrow new-identity --out FILE (a new file: the identity is never printed)"))
	}
	sk, rcpt, err := sealed.NewIdentity()
	if err != nil {
		return exitcode.Wrap(exitcode.Internal, err)
	}
	inv.scrub.Add(sk)
	doc := fmt.Sprintf("# keyescrow sealed-password identity, created %s\n# public key: %s\n%s\n", a.Clock().UTC().Format(time.RFC3339), rcpt, sk.Reveal())
	f, err := os.OpenFile(inv.out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return exitcode.Wrap(exitcode.Usage, fmt.Errorf("--out %s exists already: an identity is never overwritten; choose a new name", inv.out))
		}
		return exitcode.Wrap(exitcode.Usage, fmt.Errorf("cannot create %s: %w", inv.out, err))
	}
	_, err = f.WriteString(doc)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(inv.out)
		return exitcode.Wrap(exitcode.Internal, fmt.Errorf("writing %s: %w", inv.out, err))
	}
	inv.log.Info("wrote a new age identity, owner-only: keep it offline; put its public key in backup.seal_to", "path", inv.out)
	if inv.jsonOut {
		b, _ := json.Marshal(map[string]string{"recipient": rcpt, "identity_file": inv.out})
		_, err = fmt.Fprintf(inv.stdout, "%s\n", b)
		return err
	}
	_, err = fmt.Fprintln(inv.stdout, rcpt)
	return err
}
