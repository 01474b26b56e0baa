package escrow

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/keyescrow/keyescrow/internal/config"
	"github.com/keyescrow/keyescrow/internal/receipt"
	"github.com/keyescrow/keyescrow/internal/secret"
	"github.com/keyescrow/keyescrow/internal/sqlserver"
)

// HierarchySQL is what backup and inventory need of SQL Server for the
// keys below the service master key (implemented by *sqlserver.Client).
type HierarchySQL interface {
	Inventory(ctx context.Context) (sqlserver.Hierarchy, error)
	BackupDatabaseMasterKey(ctx context.Context, db, serverPath string, password, masterKeyPassword secret.Value) error
	BackupCertificate(ctx context.Context, b sqlserver.CertificateBackup) error
}

// HierarchyRestoreSQL is what restore --apply and drill need of SQL Server
// for a database master key or a certificate (implemented by
// *sqlserver.Client).
type HierarchyRestoreSQL interface {
	Inventory(ctx context.Context) (sqlserver.Hierarchy, error)
	RestoreDatabaseMasterKey(ctx context.Context, db, serverPath string, filePassword, newPassword, masterKeyPassword secret.Value, force bool) error
	CreateCertificateFromFile(ctx context.Context, r sqlserver.CertificateRestore) error
}

// Selection is the hierarchy as the configuration selects it.
type Selection struct {
	// Items are the selected items, in inventory order (each database's
	// master key, then its certificates).
	Items []receipt.Item
	// Excluded are the items the configuration leaves out, each with why
	// (Action ItemExcluded).
	Excluded []receipt.ItemResult
	// Others are certificates that are never escrowed: SQL Server's own
	// ##MS_…## certificates and certificates without a private key
	// (Reason says which).
	Others []receipt.ItemResult
	// Inventory is what the run records: the selected items and the
	// databases whose keys could not be read.
	Inventory receipt.Inventory
}

// FormatName is the receipt's name of a certificate format.
func FormatName(f sqlserver.CertificateFormat) string {
	if f == sqlserver.FormatPFX {
		return "pfx"
	}
	return "pvk"
}

// SelectItems turns an inventory into items and applies the configured
// selection: every database master key and every certificate with a
// private key, SQL Server's own ##MS_…## certificates aside, minus what
// hierarchy.databases and hierarchy.certificates leave out.
func SelectItems(h sqlserver.Hierarchy, cfg config.Hierarchy) Selection {
	var s Selection
	s.Inventory.Complete = true
	tde := map[string][]string{} // certificate name (lower case) → TDE databases
	for _, d := range h.Databases {
		if d.Encryption != nil && d.Encryption.Certificate != "" {
			k := strings.ToLower(d.Encryption.Certificate)
			tde[k] = append(tde[k], d.Name)
		}
	}
	format := FormatName(sqlserver.FormatFor(h.MajorVersion))
	for _, d := range h.Databases {
		if d.Problem != "" {
			s.Inventory.Complete = false
			s.Inventory.Problems = append(s.Inventory.Problems, receipt.InventoryNote{Database: d.Name, Message: d.Problem})
		}
		dbIn, dbPattern := cfg.Databases.Selected(d.Name)
		exclude := func(it receipt.Item, why string) {
			s.Excluded = append(s.Excluded, receipt.ItemResult{Item: it, Action: receipt.ItemExcluded, Reason: why})
		}
		dbWhy := "its database is not in hierarchy.databases.include"
		if dbPattern != "" {
			dbWhy = fmt.Sprintf("its database matches hierarchy.databases.exclude %q", dbPattern)
		}
		if mk := d.MasterKey; mk != nil {
			modified := mk.Modified.UTC()
			bySMK := mk.ServiceMasterKey
			it := receipt.Item{
				Kind: receipt.KindDatabaseMasterKey, Database: d.Name, Name: receipt.MasterKeyName,
				KeyGUID: strings.ToUpper(mk.GUID), Modified: &modified, ProtectedByServiceMasterKey: &bySMK,
			}
			if dbIn {
				s.Items = append(s.Items, it)
			} else {
				exclude(it, dbWhy)
			}
		}
		for _, c := range d.Certificates {
			expiry := c.Expiry.UTC()
			it := receipt.Item{
				Kind: receipt.KindCertificate, Database: d.Name, Name: c.Name,
				Thumbprint: c.ThumbprintHex(), Subject: c.Subject, Expiry: &expiry, PrivateKey: c.PrivateKey,
				Format: format,
			}
			if strings.EqualFold(d.Name, "master") {
				it.TDE = slices.Clone(tde[strings.ToLower(c.Name)])
			}
			switch {
			case c.System():
				s.Others = append(s.Others, receipt.ItemResult{Item: it, Action: receipt.ItemExcluded, Reason: "SQL Server's own certificate: it is made again by SQL Server"})
				continue
			case !c.HasPrivateKey():
				s.Others = append(s.Others, receipt.ItemResult{Item: it, Action: receipt.ItemExcluded, Reason: "no private key: nothing secret to escrow"})
				continue
			case !dbIn:
				exclude(it, dbWhy)
				continue
			}
			if in, pat := cfg.Certificates.SelectedCertificate(d.Name, c.Name); !in {
				why := "not in hierarchy.certificates.include"
				if pat != "" {
					why = fmt.Sprintf("matches hierarchy.certificates.exclude %q", pat)
				}
				exclude(it, why)
				continue
			}
			s.Items = append(s.Items, it)
		}
	}
	s.Inventory.Items = s.Items
	return s
}
