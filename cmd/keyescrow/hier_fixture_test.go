package main_test

import (
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/mssqltest"
)

// This file holds the server of the hierarchy's black-box tests and the
// receipt fields of the hierarchy (docs/receipt.md, docs/hierarchy.md).

// Passwords of the hierarchy fixture: the database master keys' and a
// private key's own. Like every secret, they never appear in any output.
const (
	masterDMKPassword = "Master-Dmk-Pa55!"
	hrDMKPassword     = "Hr-Dmk-Pa55'wörd"
	payrollKeyPW      = "Payr0ll-Key-Pa55"
)

// hierDatabases is the server of the hierarchy's tests: the service master
// key, master's database master key, a TDE database (Sales) and the
// certificate in master that protects it (TDECert), a user database (HR)
// whose master key only its password opens, with a certificate under that
// key (Payroll) and one with a password of its own (Signing), and a user
// database (Ops) with a certificate under its master key (OpsCert) and a
// public certificate without a private key (Partner).
func hierDatabases() []mssqltest.Database {
	return []mssqltest.Database{
		{Name: "master", MasterKey: &mssqltest.MasterKey{Password: masterDMKPassword},
			Certificates: []mssqltest.Certificate{{Name: "TDECert", Subject: "CN=TDE certificate", Expiry: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)}}},
		{Name: "Sales", TDECertificate: "TDECert"},
		{Name: "HR", MasterKey: &mssqltest.MasterKey{Password: hrDMKPassword, NoServiceMasterKey: true},
			Certificates: []mssqltest.Certificate{
				{Name: "Payroll"},
				{Name: "Signing", PrivateKey: mssqltest.ByPassword, Password: payrollKeyPW},
			}},
		{Name: "Ops", MasterKey: &mssqltest.MasterKey{Password: "0ps-Dmk-Pa55!"},
			Certificates: []mssqltest.Certificate{{Name: "OpsCert"}, {Name: "Partner", PrivateKey: mssqltest.NoPrivateKey}}},
	}
}

// newHierEnv is newEnv on the hierarchy fixture, SQL Server 2022 (PFX
// certificates) unless version (e.g. 15.0.4355.3, SQL Server 2019: .cer
// and .pvk) says otherwise; the key passwords' variables
// are set and counted as secrets.
func newHierEnv(t *testing.T, version string) *env {
	t.Helper()
	e := newEnv(t, mssqltest.Config{Databases: hierDatabases(), ProductVersion: version})
	for k, v := range map[string]string{
		"KEYESCROW_HR_DMK_PASSWORD":      hrDMKPassword,
		"KEYESCROW_SIGNING_KEY_PASSWORD": payrollKeyPW,
	} {
		e.vars[k] = v
	}
	e.secrets = append(e.secrets, masterDMKPassword, hrDMKPassword, payrollKeyPW, "0ps-Dmk-Pa55!")
	return e
}

// hierPasswords is the hierarchy section that gives HR's master key and
// Signing's private key their passwords.
const hierPasswords = `hierarchy:
  passwords:
    - database: HR
      password_env: KEYESCROW_HR_DMK_PASSWORD
    - database: HR
      certificate: Signing
      password_env: KEYESCROW_SIGNING_KEY_PASSWORD
`

// sidecar is a file stored and proven beside a copy.
type sidecar struct {
	Location  string `json:"location"`
	VersionID string `json:"version_id"`
	SHA256    string `json:"sha256"`
	Bytes     int64  `json:"bytes"`
	Retention *struct {
		Mode  string    `json:"mode"`
		Until time.Time `json:"until"`
	} `json:"retention"`
	ReadBack bool `json:"read_back"`
}

// hierItem is receipt.Item.
type hierItem struct {
	Kind                        string     `json:"kind"`
	Database                    string     `json:"database"`
	Name                        string     `json:"name"`
	KeyGUID                     string     `json:"key_guid"`
	Modified                    *time.Time `json:"modify_date"`
	ProtectedByServiceMasterKey *bool      `json:"protected_by_service_master_key"`
	Thumbprint                  string     `json:"thumbprint"`
	Subject                     string     `json:"subject"`
	Expiry                      *time.Time `json:"expiry_date"`
	PrivateKey                  string     `json:"private_key_protection"`
	TDE                         []string   `json:"tde_databases"`
	Format                      string     `json:"format"`
}

// hierInventory is receipt.Inventory.
type hierInventory struct {
	Complete bool       `json:"complete"`
	Items    []hierItem `json:"items"`
	Problems []struct {
		Database string `json:"database"`
		Message  string `json:"message"`
	} `json:"problems"`
}

// hierItemResult is receipt.ItemResult: the item's fields and what the
// run did with it.
type hierItemResult struct {
	hierItem
	Action       string    `json:"action"`
	Reason       string    `json:"reason"`
	File         *fileDoc  `json:"file"`
	Destinations []destDoc `json:"destinations"`
	Newest       *struct {
		RunID        string    `json:"run_id"`
		StoredAt     time.Time `json:"stored_at"`
		Destinations []struct {
			Name      string `json:"name"`
			Location  string `json:"location"`
			VersionID string `json:"version_id"`
		} `json:"destinations"`
	} `json:"newest_copy"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}
