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
const (
	KindServiceMasterKey  = "service-master-key"
	KindDatabaseMasterKey = "database-master-key"
	KindCertificate       = "certificate"
)

// MasterKeyName is the Name of every database master key item: SQL
// Server's own name for it in sys.symmetric_keys.
const MasterKeyName = "##MS_DatabaseMasterKey##"

// Item is one key of the hierarchy below the service master key (a
// database master key or a certificate with its private key): which it is,
// and the facts change detection compares (Same). Extension
// (docs/receipt.md, docs/hierarchy.md).
type Item struct {
	Kind     string `json:"kind"`     // KindDatabaseMasterKey or KindCertificate
	Database string `json:"database"` // the database it is kept in
	Name     string `json:"name"`     // the certificate's name; MasterKeyName for a master key
	// KeyGUID and Modified identify a database master key's current key
	// (sys.symmetric_keys key_guid and modify_date): regenerating it
	// changes them.
	KeyGUID  string     `json:"key_guid,omitempty"`
	Modified *time.Time `json:"modify_date,omitempty"`
	// ProtectedByServiceMasterKey: the master key opens by itself;
	// otherwise a backup needs its password.
	ProtectedByServiceMasterKey *bool `json:"protected_by_service_master_key,omitempty"`
	// Thumbprint is a certificate's SHA-1 thumbprint, upper-case hex.
	Thumbprint string     `json:"thumbprint,omitempty"`
	Subject    string     `json:"subject,omitempty"`
	Expiry     *time.Time `json:"expiry_date,omitempty"`
	// PrivateKey is a certificate's private key protection
	// (pvt_key_encryption_type): MK, PW or SK.
	PrivateKey string `json:"private_key_protection,omitempty"`
	// TDE lists the databases whose encryption key this certificate
	// protects (transparent data encryption).
	TDE []string `json:"tde_databases,omitempty"`
	// Format is how a certificate copy is stored: "pvk" (a .cer and its
	// .pvk, before SQL Server 2022) or "pfx" (one .pfx).
	Format string `json:"format,omitempty"`
}

// Same reports whether it is the same key as o, as far as SQL Server's
// catalog tells: kind, database and name (case-insensitive, as SQL Server
// compares them), and the master key's key_guid and modify_date or the
// certificate's thumbprint.
func (it Item) Same(o Item) bool {
	if it.Kind != o.Kind || !strings.EqualFold(it.Database, o.Database) || !strings.EqualFold(it.Name, o.Name) {
		return false
	}
	switch it.Kind {
	case KindDatabaseMasterKey:
		return strings.EqualFold(it.KeyGUID, o.KeyGUID) && sameTime(it.Modified, o.Modified)
	case KindCertificate:
		return strings.EqualFold(it.Thumbprint, o.Thumbprint)
	}
	return false
}

// Changed says what differs between the archived item o and it ("" when
// Same).
func (it Item) Changed(o Item) string {
	switch {
	case it.Same(o):
		return ""
	case !strings.EqualFold(it.KeyGUID, o.KeyGUID):
		return fmt.Sprintf("key_guid %s, the newest copy has %s", it.KeyGUID, o.KeyGUID)
	case !sameTime(it.Modified, o.Modified):
		return fmt.Sprintf("modify_date %s, the newest copy has %s", timeText(it.Modified), timeText(o.Modified))
	case !strings.EqualFold(it.Thumbprint, o.Thumbprint):
		return fmt.Sprintf("thumbprint %s, the newest copy has %s", it.Thumbprint, o.Thumbprint)
	}
	return "another key"
}

// Label names the item for people: "certificate master/TDECert",
// "database master key HR".
func (it Item) Label() string {
	if it.Kind == KindDatabaseMasterKey {
		return "database master key " + it.Database
	}
	return it.Kind + " " + it.Database + "/" + it.Name
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

func timeText(t *time.Time) string {
	if t == nil {
		return "none"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// Item actions in a run's receipt (ItemResult.Action).
const (
	ItemArchived  = "archived"  // a new copy was written and proven
	ItemUnchanged = "unchanged" // its newest proven copy is still this key and younger than refresh
	ItemExcluded  = "excluded"  // the configuration leaves it out
	ItemFailed    = "failed"    // it could not be backed up or proven (Error says why)
	// ItemRestored: drill of every TDE certificate: restored into the
	// scratch server with its recorded thumbprint and private key.
	ItemRestored = "restored"
)

// ItemResult is what a backup run did with one item of the hierarchy.
type ItemResult struct {
	Item
	Action string `json:"action"`
	// Reason says why: new, changed (what), refresh (the newest copy's
	// age), unchanged since which run, excluded by which pattern.
	Reason string `json:"reason"`
	// File and Destinations describe the new copy (archived, or failed
	// after the export).
	File         *File         `json:"file,omitempty"`
	Destinations []Destination `json:"destinations,omitempty"`
	// Newest is the proven copy an unchanged item relies on.
	Newest *NewestCopy `json:"newest_copy,omitempty"`
	Error  *Error      `json:"error,omitempty"`
}

// NewestCopy is an item's newest proven copy at one destination, as its
// (genuine) receipt records it and the service still holds it.
type NewestCopy struct {
	RunID        string      `json:"run_id"`
	StoredAt     time.Time   `json:"stored_at"`
	Destinations []CopyPlace `json:"destinations"`
}

// CopyPlace is where a copy is kept.
type CopyPlace struct {
	Name      string `json:"name"`
	Location  string `json:"location"`
	VersionID string `json:"version_id"`
}

// Inventory is the hierarchy a backup run found and selected, recorded in
// the service master key's stored receipt so verify knows, from a signed
// record, which items must have a proven copy.
type Inventory struct {
	// Complete: every database's keys could be read. When false, Problems
	// say which could not.
	Complete bool            `json:"complete"`
	Items    []Item          `json:"items"`
	Problems []InventoryNote `json:"problems,omitempty"`
}

// InventoryNote is a database whose keys could not be read, and why.
type InventoryNote struct {
	Database string `json:"database"`
	Message  string `json:"message"`
}

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
	Status   string `json:"status"`
	Tool     string `json:"tool"`
	Version  string `json:"version"`
	RunID    string `json:"run_id"`
	Host     string `json:"host"`
	Instance string `json:"instance"`
	// MachineName is SQL Server's SERVERPROPERTY('MachineName') when the
	// configuration's host key names the copies differently (a failover
	// cluster instance's virtual name, a container). An extension
	// (docs/receipt.md, docs/host-and-lock.md); absent when host is
	// MachineName.
	MachineName  string        `json:"machine_name,omitempty"`
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
	// Item is the hierarchy item this receipt's copy holds (kind
	// database-master-key or certificate). Extension.
	Item *Item `json:"item,omitempty"`
	// Inventory is the hierarchy backup found and selected (backup, with
	// hierarchy on). Extension.
	Inventory *Inventory `json:"inventory,omitempty"`
	// Items is what backup did with each item of the hierarchy, excluded
	// ones too. Extension.
	Items []ItemResult `json:"items,omitempty"`
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
	// PrivateKeyOut is where a certificate's private key (.pvk) was
	// written beside Out (a certificate in the pvk format). Extension.
	PrivateKeyOut string `json:"private_key_out,omitempty"`
	// Thumbprint is the restored certificate's SHA-1 thumbprint as the
	// server reports it after CREATE CERTIFICATE (certificate restore
	// --apply and drill), upper-case hex. Extension.
	Thumbprint string `json:"thumbprint,omitempty"`
	// ThumbprintMatch: Thumbprint is the item's recorded thumbprint and
	// the server holds the certificate's private key. Absent when no
	// certificate was restored. Extension.
	ThumbprintMatch *bool `json:"thumbprint_match,omitempty"`
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
	// PrivateKey is the .pvk that travels with a certificate's .cer (a
	// certificate in the "pvk" format). Extension.
	PrivateKey *File `json:"private_key,omitempty"`
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
	// PrivateKey is a certificate's .pvk, stored and proven beside its
	// .cer. Extension.
	PrivateKey *Sidecar `json:"private_key,omitempty"`
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
	// Item is the hierarchy item the copy holds (database-master-key,
	// certificate).
	Item *Item `json:"item,omitempty"`
	// Inventory is the hierarchy the run found (service master key
	// receipts of runs with hierarchy on).
	Inventory *Inventory `json:"inventory,omitempty"`
	Scope     string     `json:"scope"`
}

// StoredScope is the Scope member of every stored receipt, for people who
// read one without the documentation.
const StoredScope = "states the copies proven when it was written; the run's outcome is its exit code and printed receipt"

// Stored returns the stored form of the receipt as it stands at at.
func (r *Receipt) Stored(at time.Time) *Stored {
	s := &Stored{
		Status: StatusProven, Tool: r.Tool, Version: r.Version, RunID: r.RunID, Host: r.Host, Instance: r.Instance,
		Kind: r.Kind, StartedAt: r.StartedAt, FinishedAt: at.UTC(), File: r.File, Waived: r.Waived,
		Destinations: r.Destinations, Password: r.Password, Item: r.Item, Inventory: r.Inventory, Scope: StoredScope,
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
	if r.Item != nil {
		fmt.Fprintf(&b, " database=%s", r.Item.Database)
		if r.Item.Kind == KindCertificate {
			fmt.Fprintf(&b, " name=%s", r.Item.Name)
		}
	}
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
		if x.PrivateKeyOut != "" {
			fmt.Fprintf(&b, "  private key written to %s (owner-only)\n", x.PrivateKeyOut)
		}
		if x.Applied {
			fmt.Fprintf(&b, "  %s %s\n", what, x.Server)
		}
		if x.ThumbprintMatch != nil {
			fmt.Fprintf(&b, "  certificate thumbprint %s, matches the receipt and has its private key: %t\n", x.Thumbprint, *x.ThumbprintMatch)
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
	for _, it := range r.Items {
		fmt.Fprintf(&b, "  %s: %s (%s)", it.Label(), it.Action, it.Reason)
		for _, d := range it.Destinations {
			fmt.Fprintf(&b, " %s=%s", d.Name, d.Status)
		}
		if it.Error != nil {
			fmt.Fprintf(&b, " error(%d): %s", it.Error.Code, it.Error.Message)
		}
		b.WriteByte('\n')
	}
	if r.Error != nil {
		fmt.Fprintf(&b, "  error(%d): %s\n", r.Error.Code, r.Error.Message)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
