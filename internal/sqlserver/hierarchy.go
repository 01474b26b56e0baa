package sqlserver

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	mssql "github.com/microsoft/go-mssqldb"
)

// Hierarchy is the encryption hierarchy below the service master key, as
// Inventory reads it: every database, its master key, its certificates,
// and which certificate protects each TDE database's encryption key.
type Hierarchy struct {
	MajorVersion int // SERVERPROPERTY('ProductMajorVersion'): 16 is SQL Server 2022
	Databases    []Database
}

// Database is one database of the instance.
type Database struct {
	Name  string
	ID    int
	State string // sys.databases.state_desc: ONLINE, OFFLINE, RESTORING …
	// Problem says why the database's keys could not be read (offline,
	// no access): "" when MasterKey and Certificates are complete.
	Problem      string
	MasterKey    *MasterKey // nil: the database has none
	Certificates []Certificate
	Encryption   *Encryption // nil: not TDE-encrypted
	// smk is sys.databases.is_master_key_encrypted_by_server.
	smk bool
}

// MasterKey is a database master key (##MS_DatabaseMasterKey##).
type MasterKey struct {
	GUID              string // key_guid
	Created, Modified time.Time
	// ServiceMasterKey: the service master key protects it too, so it
	// opens by itself; otherwise backing it up needs its password.
	ServiceMasterKey bool
}

// Private key protections, sys.certificates.pvt_key_encryption_type.
const (
	KeyByMasterKey        = "MK" // the database master key
	KeyByPassword         = "PW" // a password of its own
	KeyByServiceMasterKey = "SK"
	KeyNone               = "NA" // no private key
)

// Certificate is a certificate of a database.
type Certificate struct {
	Name       string
	Thumbprint []byte // SHA-1 of the certificate
	Subject    string
	Expiry     time.Time
	PrivateKey string    // KeyByMasterKey, KeyByPassword, KeyByServiceMasterKey or KeyNone
	LastBackup time.Time // pvt_key_last_backup_date; zero: never exported
}

// HasPrivateKey reports whether the certificate has a private key to back up.
func (c Certificate) HasPrivateKey() bool { return c.PrivateKey != "" && c.PrivateKey != KeyNone }

// System reports a certificate SQL Server made for itself (##MS_…##).
func (c Certificate) System() bool {
	return strings.HasPrefix(c.Name, "##MS_") && strings.HasSuffix(c.Name, "##")
}

// ThumbprintHex is the thumbprint as 0x-less upper-case hex.
func (c Certificate) ThumbprintHex() string { return strings.ToUpper(hex.EncodeToString(c.Thumbprint)) }

// Encryption is a database's TDE state (sys.dm_database_encryption_keys).
type Encryption struct {
	State      int    // encryption_state: 3 = encrypted
	Thumbprint []byte // encryptor_thumbprint; empty for tempdb
	Type       string // encryptor_type, e.g. CERTIFICATE
	// Certificate is the name of the certificate in master whose
	// thumbprint protects the database encryption key; "" when none does
	// (tempdb, or an asymmetric key).
	Certificate string
}

// Find returns the database named name (case-insensitive), or nil.
func (h Hierarchy) Find(name string) *Database {
	for i := range h.Databases {
		if strings.EqualFold(h.Databases[i].Name, name) {
			return &h.Databases[i]
		}
	}
	return nil
}

// TDECertificates lists the certificates in master that protect a TDE
// database, each once.
func (h Hierarchy) TDECertificates() []string {
	var out []string
	for _, d := range h.Databases {
		if d.Encryption != nil && d.Encryption.Certificate != "" && !containsFold(out, d.Encryption.Certificate) {
			out = append(out, d.Encryption.Certificate)
		}
	}
	return out
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

const stepInventory = "inventory"

// Inventory reads the hierarchy: the server's major version, every
// database (sys.databases), each online database's master key and
// certificates (three-part names, [db].sys.symmetric_keys and
// [db].sys.certificates), and the TDE mapping
// (sys.dm_database_encryption_keys, which needs VIEW SERVER STATE).
// A database whose catalog the server refuses (offline, no access) gets a
// Problem and the others are still read; a failure of the server-wide
// queries fails the inventory (exit code 3), because a TDE certificate
// missing from it could go unprotected.
func (c *Client) Inventory(ctx context.Context) (Hierarchy, error) {
	var h Hierarchy
	var major sql.NullInt64
	if err := c.queryRow(ctx, majorVersionQuery, &major); err != nil {
		return h, translate(stepInventory, err)
	}
	h.MajorVersion = int(major.Int64)
	if err := c.readDatabases(ctx, &h); err != nil {
		return h, err
	}
	for i := range h.Databases {
		d := &h.Databases[i]
		if d.State != "ONLINE" {
			d.Problem = fmt.Sprintf("the database is %s: its keys cannot be read", d.State)
			continue
		}
		if err := c.readDatabaseKeys(ctx, d); err != nil {
			var se *Error
			if !errors.As(err, &se) || se.Number == 0 {
				return h, err
			}
			d.Problem = se.Error()
		}
	}
	if err := c.readEncryption(ctx, &h); err != nil {
		return h, err
	}
	return h, nil
}

func (c *Client) queryRow(ctx context.Context, q string, dest ...any) error {
	ctx, cancel := c.limit(ctx)
	defer cancel()
	return c.conn.QueryRowContext(ctx, q).Scan(dest...)
}

// query runs q and calls scan for each row.
func (c *Client) query(ctx context.Context, q string, scan func(*sql.Rows) error) error {
	ctx, cancel := c.limit(ctx)
	defer cancel()
	rows, err := c.conn.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (c *Client) readDatabases(ctx context.Context, h *Hierarchy) error {
	err := c.query(ctx, databasesQuery, func(r *sql.Rows) error {
		var d Database
		var state sql.NullString
		var encrypted, bySMK sql.NullBool
		if err := r.Scan(&d.Name, &d.ID, &state, &encrypted, &bySMK); err != nil {
			return err
		}
		d.State, d.smk = state.String, bySMK.Bool
		h.Databases = append(h.Databases, d)
		return nil
	})
	return translate(stepInventory, err)
}

func (c *Client) readDatabaseKeys(ctx context.Context, d *Database) error {
	step := stepInventory + " of database " + d.Name
	// Catalog views show only what the login may see: an empty answer is
	// "none" only with CONTROL on the database.
	var control sql.NullInt64
	if err := c.queryRow(ctx, ControlDatabaseQuery(d.Name), &control); err != nil {
		return withHint(translate(step, err), hierarchyHint(step))
	}
	if !control.Valid || control.Int64 != 1 {
		d.Problem = "the login does not hold CONTROL on the database, so its master key and certificates are not visible (nothing was read); " +
			hierarchyHint(step)(ErrNumPermission)
		return nil
	}
	var guid mssql.UniqueIdentifier
	var created, modified sql.NullTime
	err := c.queryRow(ctx, MasterKeyQuery(d.Name), &guid, &created, &modified)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return withHint(translate(step, err), hierarchyHint(step))
	default:
		d.MasterKey = &MasterKey{GUID: guid.String(), Created: created.Time, Modified: modified.Time, ServiceMasterKey: d.smk}
	}
	err = c.query(ctx, CertificatesQuery(d.Name), func(r *sql.Rows) error {
		var ct Certificate
		var subject, prot sql.NullString
		var expiry, last sql.NullTime
		if err := r.Scan(&ct.Name, &ct.Thumbprint, &subject, &expiry, &prot, &last); err != nil {
			return err
		}
		ct.Subject, ct.Expiry, ct.PrivateKey, ct.LastBackup = subject.String, expiry.Time, strings.TrimSpace(prot.String), last.Time
		d.Certificates = append(d.Certificates, ct)
		return nil
	})
	return withHint(translate(step, err), hierarchyHint(step))
}

// readEncryption maps each TDE database to its certificate in master.
func (c *Client) readEncryption(ctx context.Context, h *Hierarchy) error {
	byID := map[int]*Database{}
	for i := range h.Databases {
		byID[h.Databases[i].ID] = &h.Databases[i]
	}
	master := h.Find("master")
	err := c.query(ctx, encryptionQuery, func(r *sql.Rows) error {
		var id int
		var state sql.NullInt64
		var thumb []byte
		var typ sql.NullString
		if err := r.Scan(&id, &state, &thumb, &typ); err != nil {
			return err
		}
		d := byID[id]
		if d == nil {
			return nil
		}
		e := &Encryption{State: int(state.Int64), Thumbprint: thumb, Type: typ.String}
		if master != nil && len(thumb) > 0 {
			for _, ct := range master.Certificates {
				if bytes.Equal(ct.Thumbprint, thumb) {
					e.Certificate = ct.Name
				}
			}
		}
		d.Encryption = e
		return nil
	})
	if err != nil {
		return withHint(translate(stepInventory, err), inventoryHint)
	}
	return nil
}

// inventoryHint explains a refused sys.dm_database_encryption_keys.
func inventoryHint(n int32) string {
	switch n {
	case ErrNumDMVPermission, ErrNumDMVDenied:
		return "reading which certificate protects each TDE database (sys.dm_database_encryption_keys) needs VIEW SERVER STATE (VIEW SERVER SECURITY STATE on SQL Server 2022): GRANT VIEW SERVER STATE TO [login];"
	}
	return ""
}

// withHint replaces an *Error's hint with hint(Number) when that says something.
func withHint(err error, hint func(int32) string) error {
	var e *Error
	if errors.As(err, &e) {
		if h := hint(e.Number); h != "" {
			e.Hint = h
		}
	}
	return err
}
