package cli

import (
	"fmt"
	"strings"

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
