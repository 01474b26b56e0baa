package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/keyescrow/keyescrow/internal/config"
	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/lock"
	"github.com/keyescrow/keyescrow/internal/state"
)

// Where a command's host name came from, as the log line says.
const (
	hostFromFlag     = "--host"
	hostFromConfig   = "the host key of the configuration"
	hostFromRecord   = "the identity backup recorded in the state folder"
	hostFromOS       = "the OS host name"
	hostFromFallback = "no host name known (the OS gave none)"
)

// identityRecord is what backup records in the state folder when the
// configuration sets no host: the names SQL Server gave, so that list,
// verify, restore, drill and archive on this host with the same
// configuration find the same copies without asking SQL Server.
type identityRecord struct {
	Config      string    `json:"config"` // the configuration's absolute path, "" when none
	Host        string    `json:"host"`
	Instance    string    `json:"instance"`
	MachineName string    `json:"machine_name"`
	ServerName  string    `json:"server_name"`
	RecordedAt  time.Time `json:"recorded_at"`
	RunID       string    `json:"run_id"`
}

// maxIdentityRecord bounds what is read of a record.
const maxIdentityRecord = 16 << 10

// hostID is the host (and, from a record, instance) a command defaults to.
type hostID struct {
	Host, Instance, Source string
}

// stateDir is state_directory, else the per-OS default.
func (inv *invocation) stateDir(cfg *config.Config) (string, error) {
	if cfg.StateDirectory != "" {
		return cfg.StateDirectory, nil
	}
	return state.Default(func(k string) string { v, _ := inv.app.Env(k); return v })
}

// lockPath is lock_file, else keyescrow.lock in the state folder.
func (inv *invocation) lockPath(cfg *config.Config) (string, error) {
	if cfg.LockFile != "" {
		return cfg.LockFile, nil
	}
	dir, err := inv.stateDir(cfg)
	if err != nil {
		return "", exitcode.Wrap(exitcode.Usage, fmt.Errorf("no lock file: %w", err))
	}
	return filepath.Join(dir, lock.FileName), nil
}

// recordName is the file of cfg's identity record: one per configuration
// file, so two configurations on one host (two instances) keep theirs.
func recordName(cfg *config.Config) (name, source string) {
	if cfg.Source != "" {
		if abs, err := filepath.Abs(cfg.Source); err == nil {
			source = abs
		} else {
			source = cfg.Source
		}
	}
	sum := sha256.Sum256([]byte(source))
	return "identity-" + hex.EncodeToString(sum[:8]) + ".json", source
}

// recordIdentity stores the identity backup used. A failure is a warning:
// the copies are archived either way, and the read commands then fall back
// to the OS host name (and say so).
func (inv *invocation) recordIdentity(ctx context.Context, cfg *config.Config, rec identityRecord) {
	warn := func(err error) {
		inv.log.WarnContext(ctx, "the host identity was not recorded: list, verify and restore will default to the OS host name unless host is set", "err", err.Error())
	}
	dir, err := inv.stateDir(cfg)
	if err != nil {
		warn(err)
		return
	}
	d, err := state.Open(dir, true)
	if err != nil {
		warn(err)
		return
	}
	defer d.Close()
	name, source := recordName(cfg)
	rec.Config = source
	b, _ := json.MarshalIndent(rec, "", "  ")
	if err := d.WriteFile(name, append(b, '\n')); err != nil {
		warn(err)
		return
	}
	inv.log.DebugContext(ctx, "recorded the host identity", "host", rec.Host, "instance", rec.Instance, "file", filepath.Join(dir, name))
}

// readIdentity reads cfg's record; ok is false when there is none. An
// unsafe state folder or record is an error: a record another account
// could plant would point verify at another host's copies.
func (inv *invocation) readIdentity(cfg *config.Config) (identityRecord, bool, error) {
	dir, err := inv.stateDir(cfg)
	if err != nil {
		inv.log.Debug("no state folder to read the host identity from", "err", err.Error())
		return identityRecord{}, false, nil
	}
	d, err := state.Open(dir, false)
	if errors.Is(err, fs.ErrNotExist) {
		return identityRecord{}, false, nil
	}
	if err != nil {
		return identityRecord{}, false, exitcode.Wrap(exitcode.Usage, fmt.Errorf("the state folder: %w", err))
	}
	defer d.Close()
	name, source := recordName(cfg)
	b, err := d.ReadFile(name, maxIdentityRecord)
	if errors.Is(err, fs.ErrNotExist) {
		return identityRecord{}, false, nil
	}
	if err != nil {
		return identityRecord{}, false, exitcode.Wrap(exitcode.Usage, fmt.Errorf("the host identity record: %w", err))
	}
	var rec identityRecord
	if err := json.Unmarshal(b, &rec); err != nil || rec.Host == "" || rec.Config != source {
		return identityRecord{}, false, exitcode.Wrap(exitcode.Usage, fmt.Errorf("the host identity record %s is damaged or belongs to another configuration: remove it (the next backup writes it again) or set host", filepath.Join(dir, name)))
	}
	return rec, true, nil
}

// hostIdentity is the host a command defaults to, in this order: --host, the
// configuration's host key, the identity backup recorded with this
// configuration, the OS host name. It logs which source was used.
func (inv *invocation) hostIdentity() (hostID, error) {
	if inv.hostIDOnce != nil {
		return *inv.hostIDOnce, nil
	}
	id, err := inv.findHostIdentity()
	if err != nil {
		return id, err
	}
	inv.hostIDOnce = &id
	args := []any{"host", id.Host, "source", id.Source}
	if id.Instance != "" {
		args = append(args, "instance", id.Instance)
	}
	inv.log.Info("host identity", args...)
	return id, nil
}

func (inv *invocation) findHostIdentity() (hostID, error) {
	if inv.host != "" {
		return hostID{Host: inv.host, Source: hostFromFlag}, nil
	}
	cfg := inv.cfg
	if cfg != nil && cfg.Host != "" {
		return hostID{Host: cfg.Host, Source: hostFromConfig}, nil
	}
	if cfg != nil {
		rec, ok, err := inv.readIdentity(cfg)
		if err != nil {
			return hostID{}, err
		}
		if ok {
			return hostID{Host: rec.Host, Instance: rec.Instance, Source: hostFromRecord + " (" + rec.RecordedAt.UTC().Format(time.RFC3339) + ")"}, nil
		}
	}
	if h, err := inv.app.Hostname(); err == nil && strings.TrimSpace(h) != "" {
		return hostID{Host: h, Source: hostFromOS}, nil
	}
	return hostID{Host: "localhost", Source: hostFromFallback}, nil
}

// defaultInstance is --instance, else the instance recorded with the
// identity (restore and drill, which need one when a host has several).
func (inv *invocation) defaultInstance(id hostID) string {
	if inv.instance != "" {
		return inv.instance
	}
	if strings.HasPrefix(id.Source, hostFromRecord) {
		return id.Instance
	}
	return ""
}
