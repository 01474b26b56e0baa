package cli

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/keyescrow/keyescrow/internal/config"
	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/secret"
	"github.com/keyescrow/keyescrow/internal/sign"
)

// trust parses trust.public_keys (validated at load).
func trustOf(cfg *config.Config) (sign.Trust, error) {
	t, err := sign.ParseTrust(cfg.Trust.PublicKeys)
	if err != nil {
		return nil, exitcode.Wrap(exitcode.Usage, err)
	}
	return t, nil
}

// readSigningKey reads the receipt signing key when one is configured (nil
// otherwise). A key file group or others can use is refused, like a folder
// open to them; the key's text is registered with the scrubber.
func (inv *invocation) readSigningKey(cfg *config.Config) (ed25519.PrivateKey, error) {
	src := cfg.SigningKeySource()
	if src.Env == "" && src.File == "" {
		return nil, nil
	}
	usage := func(err error) error {
		return exitcode.Wrap(exitcode.Usage, fmt.Errorf("%s: %w", src.Key, err))
	}
	if src.File != "" && src.Env == "" {
		fi, err := os.Lstat(src.File)
		if err == nil {
			if err := sign.CheckKeyFileMode(src.File, fi); err != nil {
				return nil, usage(err)
			}
		}
	}
	v, err := inv.readSecret(src)
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(v.Reveal(), "\n") {
		if l := strings.TrimSpace(line); !strings.HasPrefix(l, "-----") {
			inv.scrub.Add(secret.New(l))
		}
	}
	priv, err := sign.ParsePrivateKey([]byte(v.Reveal()))
	if err != nil {
		where := "the file " + src.File
		if src.Env != "" {
			where = "the variable " + src.Env
		}
		return nil, usage(fmt.Errorf("%s does not hold a signing key: %v", where, err))
	}
	return priv, nil
}

// writeSigner reads the signing key for backup and archive. With keys
// pinned, a run whose copies would not count is refused before anything is
// written: no signing key, or one whose public key is not pinned.
func (inv *invocation) writeSigner(cfg *config.Config, trust sign.Trust) (ed25519.PrivateKey, error) {
	priv, err := inv.readSigningKey(cfg)
	if err != nil || len(trust) == 0 {
		return priv, err
	}
	if priv == nil {
		return nil, exitcode.Wrap(exitcode.Usage, errors.New("trust.public_keys is set but no signing key is: the copies this run stored would carry unsigned receipts that list, verify and restore do not count; set signing.key_file (keyescrow init-key makes one)"))
	}
	if _, ok := signingPinned(priv, trust); !ok {
		pub := sign.Public(priv)
		return nil, exitcode.Wrap(exitcode.Usage, fmt.Errorf("signing.key_file: its public key %s (key id %s) is not in trust.public_keys, so the copies this run stored would not count: pin it there", pub, pub.ID))
	}
	return priv, nil
}

// signingPinned reports whether priv's public key is among the pinned keys;
// with none pinned, ok is true and pinned false.
func signingPinned(priv ed25519.PrivateKey, t sign.Trust) (pinned, ok bool) {
	if len(t) == 0 {
		return false, true
	}
	_, found := t.Find(sign.Public(priv).ID)
	return true, found
}

// runInitKey creates a new signing key: the private half to --out
// (create-only, owner-only), the public half on stdout, one line, for the
// operator to pin in trust.public_keys on the hosts and in a second place
// the agent's credentials cannot change.
func (a *App) runInitKey(ctx context.Context, inv *invocation) error {
	fail := func(err error) error {
		inv.logFailure("init-key failed", err)
		return err
	}
	if len(inv.args) > 0 {
		return fail(exitcode.Wrap(exitcode.Usage, fmt.Errorf("init-key takes no arguments (got %q): keyescrow init-key --out FILE", inv.args[0])))
	}
	if inv.out == "" {
		return fail(exitcode.Wrap(exitcode.Usage, errors.New("init-key needs --out FILE: where to write the new private signing key (e.g. /etc/keyescrow/signing.key)")))
	}
	path, err := filepath.Abs(inv.out)
	if err != nil {
		return fail(exitcode.Wrap(exitcode.Usage, err))
	}
	pub, err := sign.CreateKey(path)
	if err != nil {
		return fail(exitcode.Wrap(exitcode.Usage, err))
	}
	inv.log.Info("created a signing key: set signing.key_file to it on this host, and pin the public key printed on stdout in trust.public_keys wherever keyescrow verifies or restores; keep a copy of the public key where this host's credentials cannot change it", "key_file", path, "key_id", pub.ID)
	if inv.jsonOut {
		doc, _ := json.MarshalIndent(map[string]string{"public_key": pub.String(), "key_id": pub.ID, "key_file": path}, "", "  ")
		_, err = fmt.Fprintf(inv.stdout, "%s\n", doc)
		return err
	}
	_, err = fmt.Fprintf(inv.stdout, "%s\n", pub)
	return err
}
