// Package receipt owns the receipt of a run: the one JSON document (or the
// few lines of text) keyescrow prints on stdout and stores beside every
// archived key, whose fields are part of the contract (docs/receipt.md).
package receipt

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// Kinds of key archived.
const KindServiceMasterKey = "service-master-key"

// Run and destination statuses.
const (
	StatusOK     = "ok"
	StatusFailed = "failed"
	// StatusProven is the status of a stored receipt (see Stored): the
	// copies it lists as verified were proven when it was written. It
	// never says how the run ended.
	StatusProven   = "proven"
	DestVerified   = "verified"
	DestRefused    = "refused" // preflight: the destination does not meet policy; nothing written
	DestFailed     = "failed"
	ChecksumSHA256 = "SHA256"
)

// Receipt is the record of one run.
type Receipt struct {
	Status       string        `json:"status"`
	Tool         string        `json:"tool"`
	Version      string        `json:"version"`
	RunID        string        `json:"run_id"`
	Host         string        `json:"host"`
	Instance     string        `json:"instance"`
	Kind         string        `json:"kind"`
	StartedAt    time.Time     `json:"started_at"`
	FinishedAt   time.Time     `json:"finished_at"`
	File         *File         `json:"file"`
	Waived       []string      `json:"waived"`
	Destinations []Destination `json:"destinations"`
	// Error is set when the run failed before or outside the destinations
	// (configuration, SQL Server, lock, interruption). An extension (docs/receipt.md).
	Error *Error `json:"error,omitempty"`
	// ExitCode is the process exit code of the run. An extension (docs/receipt.md).
	ExitCode int `json:"exit_code"`
	// ServerFile is the key file SQL Server wrote on its own disk in
	// backup.remote mode, and whether keyescrow removed it. An extension
	// (docs/receipt.md); absent in local mode.
	ServerFile *ServerFile `json:"server_file,omitempty"`
	// Restore is what `restore` and `drill` did with the copy they fetched
	// (the file and destinations then describe that copy and where it was
	// proven). An extension (docs/receipt.md); absent for backup and archive.
	Restore *Restore `json:"restore,omitempty"`
	// Password says how the key file's password is kept (backup only).
	// Extension.
	Password *Password `json:"password,omitempty"`
	// Quorum is set when `require` lets the run succeed with fewer than
	// every destination. Extension.
	Quorum *Quorum `json:"quorum,omitempty"`
}

// Password modes.
const (
	// PasswordStatic: the configured password (password_env/password_file)
	// encrypts the key file; whoever holds it opens every copy.
	PasswordStatic = "static"
	// PasswordSealed: a fresh random password encrypts this key file; it is
	// stored beside each copy, sealed to Recipients (age).
	PasswordSealed = "sealed"
)

// Password is how the key file's password is kept.
type Password struct {
	Mode string `json:"mode"`
	// Recipients are the age public keys the sealed password opens with.
	Recipients []string `json:"recipients,omitempty"`
}

// Quorum is the run's success rule when not every destination must verify.
type Quorum struct {
	// Require is how many destinations had to hold a proven copy.
	Require int `json:"require"`
	// Verified is how many did.
	Verified int `json:"verified"`
	// Destinations is how many are configured.
	Destinations int `json:"destinations"`
	// Met: Verified >= Require and every required destination verified.
	Met bool `json:"met"`
}

// Sidecar is a file stored and proven beside a copy (the sealed password).
type Sidecar struct {
	Location  string     `json:"location"`
	VersionID string     `json:"version_id"`
	SHA256    string     `json:"sha256"`
	Bytes     int64      `json:"bytes"`
	Retention *Retention `json:"retention"`
	ReadBack  bool       `json:"read_back"`
}

// Restore is the outcome of restore or drill.
type Restore struct {
	// Out is where the verified copy was written (create-only, owner-only).
	Out string `json:"out,omitempty"`
	// Applied: RESTORE SERVICE MASTER KEY ran and succeeded on Server.
	Applied bool `json:"applied"`
	// Server is @@SERVERNAME of the server the key was restored into.
	Server string `json:"server,omitempty"`
	// Force: RESTORE … FORCE was asked for (data the old key protected
	// and the new one cannot decrypt is lost).
	Force bool `json:"force"`
	// Drill: the server is the scratch server of a restore drill.
	Drill bool `json:"drill"`
	// Authenticated: the copy's receipt is signed by a pinned key
	// (trust.public_keys); KeyID names it. False when no key is pinned, or
	// when --version-id chose a copy whose receipt is not.
	Authenticated bool   `json:"receipt_authenticated"`
	KeyID         string `json:"key_id,omitempty"`
	// Skipped are the newer copies passed over before the one restored
	// (no receipt, not genuine, not authenticated), each with why.
	Skipped []Skipped `json:"skipped,omitempty"`
}

// Skipped is a stored copy (or a version of a receipt) that was not counted
// as genuine, and why.
type Skipped struct {
	Destination string `json:"destination"`
	Location    string `json:"location"`
	VersionID   string `json:"version_id"`
	// RunID is the run that wrote it, as far as its name (or its receipt)
	// tells: the name carries the first 8 hex digits.
	RunID string `json:"run_id,omitempty"`
	// Reason: unfinished (no receipt: the run died after the write, or is
	// still running), unauthenticated (its receipt is not signed by a pinned
	// key), forged (a signature that does not verify, or a receipt naming
	// another version or file), tampered (a receipt name with a second
	// version), hidden (a delete marker hides it), unreadable.
	Reason  string `json:"reason"`
	Message string `json:"message"`
	// Evidence: this is evidence of tampering (verify exits 6).
	Evidence bool `json:"evidence"`
}

// Reasons a copy is skipped.
const (
	SkipUnfinished      = "unfinished"
	SkipUnauthenticated = "unauthenticated"
	SkipForged          = "forged"
	SkipTampered        = "tampered"
	SkipHidden          = "hidden"
	SkipUnreadable      = "unreadable"
)

// ServerFile is a key file on the SQL Server's disk (backup.remote).
type ServerFile struct {
	Path    string `json:"path"`
	Removed bool   `json:"removed"`
	// Remove says how to remove the file when it remains on the server.
	Remove string `json:"remove,omitempty"`
}

// File is the archived key file.
type File struct {
	Name   string `json:"name"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// Destination is what happened at one destination.
type Destination struct {
	Name      string     `json:"name"`
	Type      string     `json:"type"`
	Location  string     `json:"location"`
	VersionID string     `json:"version_id"`
	Region    string     `json:"region"`
	Retention *Retention `json:"retention"`
	Checksum  Checksum   `json:"checksum"`
	ReadBack  bool       `json:"read_back"`
	Status    string     `json:"status"`
	Error     *Error     `json:"error,omitempty"`
	// Checks are the preflight facts behind the status. Extension.
	Checks []Check `json:"checks,omitempty"`
	// SealedPassword is the sealed password stored and proven beside this
	// copy (backup.seal_to). Extension.
	SealedPassword *Sidecar `json:"sealed_password,omitempty"`
}

// Retention as read back from the service.
type Retention struct {
	Mode  string    `json:"mode"`
	Until time.Time `json:"until"`
}

// Checksum compares the local hash with what the destination reports.
type Checksum struct {
	Algorithm string `json:"algorithm"`
	Local     string `json:"local"`
	Remote    string `json:"remote"`
	Match     bool   `json:"match"`
}

// Error is a failure with its exit code.
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// Check is one preflight property and how the policy judged it.
type Check struct {
	Name   string `json:"name"`
	State  string `json:"state"` // proven, absent, unknown, not-applicable
	Value  string `json:"value,omitempty"`
	Result string `json:"result"` // pass, fail, waived, info
	Detail string `json:"detail,omitempty"`
}

// Stored is the receipt kept beside every proven copy. It is written once
// every destination's copy is proven or has failed, before the run ends, so
// it states only what was proven then: status is always "proven" (never
// "ok"), each destination says whether its copy was verified, and it has no
// exit code. The run's outcome is the receipt printed on stdout, the exit
// code and the metrics.
type Stored struct {
	Status     string    `json:"status"`
	Tool       string    `json:"tool"`
	Version    string    `json:"version"`
	RunID      string    `json:"run_id"`
	Host       string    `json:"host"`
	Instance   string    `json:"instance"`
	Kind       string    `json:"kind"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"` // when this receipt was written, not the run's end
	File       *File     `json:"file"`
	Waived     []string  `json:"waived"`
	// Destinations: every destination of the run as it stood; a
	// destination whose receipt is later refused still reads "verified"
	// here, because its copy was.
	Destinations []Destination `json:"destinations"`
	// Password says how the key file's password is kept (sealed: to whom).
	Password *Password `json:"password,omitempty"`
	Scope    string    `json:"scope"`
}

// StoredScope is the Scope member of every stored receipt, for people who
// read one without the documentation.
const StoredScope = "states the copies proven when it was written; the run's outcome is its exit code and printed receipt"

// Stored returns the stored form of the receipt as it stands at at.
func (r *Receipt) Stored(at time.Time) *Stored {
	s := &Stored{
		Status: StatusProven, Tool: r.Tool, Version: r.Version, RunID: r.RunID, Host: r.Host, Instance: r.Instance,
		Kind: r.Kind, StartedAt: r.StartedAt, FinishedAt: at.UTC(), File: r.File, Waived: r.Waived,
		Destinations: r.Destinations, Password: r.Password, Scope: StoredScope,
	}
	if s.Waived == nil {
		s.Waived = []string{}
	}
	if s.Destinations == nil {
		s.Destinations = []Destination{}
	}
	return s
}

// JSON renders the stored receipt as one indented JSON object, without a
// trailing newline (the exact bytes a signature covers).
func (s *Stored) JSON() ([]byte, error) {
	return json.MarshalIndent(s, "", "  ")
}

// JSON renders the receipt as one indented JSON document with a newline.
func (r *Receipt) JSON() ([]byte, error) {
	if r.Waived == nil {
		r.Waived = []string{}
	}
	if r.Destinations == nil {
		r.Destinations = []Destination{}
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// WriteText writes the receipt for people: one line for the run, one per
// destination.
func (r *Receipt) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Status, r.Kind)
	if r.Host != "" {
		fmt.Fprintf(&b, " host=%s instance=%s", r.Host, r.Instance)
	}
	if r.RunID != "" {
		fmt.Fprintf(&b, " run=%s", r.RunID)
	}
	if r.File != nil {
		fmt.Fprintf(&b, " file=%s bytes=%d sha256=%s", r.File.Name, r.File.Bytes, r.File.SHA256)
	}
	if len(r.Waived) > 0 {
		fmt.Fprintf(&b, " waived=%s", strings.Join(r.Waived, ","))
	}
	b.WriteByte('\n')
	for _, d := range r.Destinations {
		fmt.Fprintf(&b, "  %s (%s): %s %s", d.Name, d.Type, d.Status, d.Location)
		if d.VersionID != "" {
			fmt.Fprintf(&b, " version=%s", d.VersionID)
		}
		if d.Retention != nil {
			fmt.Fprintf(&b, " retention=%s until %s", d.Retention.Mode, d.Retention.Until.Format(time.RFC3339))
		}
		if d.Checksum.Remote != "" {
			fmt.Fprintf(&b, " checksum-match=%t", d.Checksum.Match)
		}
		if d.Status == DestVerified {
			fmt.Fprintf(&b, " read-back=%t", d.ReadBack)
		}
		if d.Error != nil {
			fmt.Fprintf(&b, " error(%d): %s", d.Error.Code, d.Error.Message)
		}
		b.WriteByte('\n')
	}
	if f := r.ServerFile; f != nil {
		if f.Removed {
			fmt.Fprintf(&b, "  server file %s: removed\n", f.Path)
		} else {
			fmt.Fprintf(&b, "  server file %s: remains on the server; %s\n", f.Path, f.Remove)
		}
	}
	if x := r.Restore; x != nil {
		if x.Out != "" {
			fmt.Fprintf(&b, "  written to %s (owner-only)\n", x.Out)
		}
		what := "restored into"
		if x.Drill {
			what = "drill: restored into the scratch server"
		}
		if x.Force {
			what += " (FORCE)"
		}
		if x.Applied {
			fmt.Fprintf(&b, "  %s %s\n", what, x.Server)
		}
		for _, s := range x.Skipped {
			fmt.Fprintf(&b, "  passed over (%s): %s\n", s.Reason, s.Message)
		}
		if x.Authenticated {
			fmt.Fprintf(&b, "  receipt authenticated: signed by pinned key %s\n", x.KeyID)
		} else {
			b.WriteString("  receipt not authenticated (no pinned key vouches for it)\n")
		}
	}
	if r.Error != nil {
		fmt.Fprintf(&b, "  error(%d): %s\n", r.Error.Code, r.Error.Message)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
