package mssqltest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"
)

// The encryption hierarchy below the service master key, as SQL Server
// keeps it (Microsoft Learn, "Encryption Hierarchy", "Transparent data
// encryption (TDE)"):
//
//   - each database may have one database master key (DMK),
//     ##MS_DatabaseMasterKey## in its sys.symmetric_keys, always encrypted
//     by a password and, by default, also by the service master key, which
//     then opens it automatically (sys.databases.is_master_key_encrypted_by_server);
//   - certificates live in a database (sys.certificates); a private key is
//     encrypted by the DMK (pvt_key_encryption_type MK), by its own password
//     (PW), or absent (NA);
//   - a TDE database's database encryption key is protected by a
//     certificate in master (sys.dm_database_encryption_keys.encryptor_thumbprint).
//
// The stand-in's certificates carry ECDSA P-256 keys (SQL Server's are RSA):
// what is modelled is who protects what, the thumbprints and the files.

// PrivateKeyProtection is sys.certificates.pvt_key_encryption_type.
type PrivateKeyProtection string

// Private key protections.
const (
	ByMasterKey  PrivateKeyProtection = "MK" // encrypted by the database master key (the default)
	ByPassword   PrivateKeyProtection = "PW" // encrypted by its own password
	NoPrivateKey PrivateKeyProtection = "NA" // a public certificate only
)

// Database configures one database of the stand-in. master, tempdb, model
// and msdb always exist; list master here to give it keys.
type Database struct {
	Name string `json:"name"`
	// Offline: the database is not ONLINE; reading its catalog fails with Msg 942.
	Offline      bool          `json:"offline,omitempty"`
	MasterKey    *MasterKey    `json:"master_key,omitempty"`
	Certificates []Certificate `json:"certificates,omitempty"`
	// TDECertificate names the certificate in master that protects this
	// database's encryption key: the database is TDE-encrypted.
	TDECertificate string `json:"tde_certificate,omitempty"`
}

// MasterKey configures a database master key.
type MasterKey struct {
	// Password is the ENCRYPTION BY PASSWORD of CREATE MASTER KEY: OPEN
	// MASTER KEY DECRYPTION BY PASSWORD takes it.
	Password string `json:"password"`
	// NoServiceMasterKey models ALTER MASTER KEY DROP ENCRYPTION BY SERVICE
	// MASTER KEY: the key opens only with OPEN MASTER KEY.
	NoServiceMasterKey bool `json:"no_service_master_key,omitempty"`
}

// Certificate configures a certificate.
type Certificate struct {
	Name    string `json:"name"`
	Subject string `json:"subject,omitempty"` // default: the name
	// Expiry is expiry_date; zero: a year after the server starts.
	Expiry     time.Time            `json:"expiry,omitzero"`
	PrivateKey PrivateKeyProtection `json:"private_key,omitempty"` // default MK
	// Password protects a PW private key.
	Password string `json:"password,omitempty"`
}

type dbState struct {
	name    string
	id      int
	offline bool
	mk      *mkState
	certs   []*certState
	tde     string // certificate in master protecting the database encryption key
	nextID  int
}

type mkState struct {
	key               []byte
	guid              [16]byte
	passwords         []string
	bySMK             bool
	created, modified time.Time
}

type certState struct {
	name       string
	id         int
	cert       *x509.Certificate
	key        crypto.Signer // nil: no private key
	prot       PrivateKeyProtection
	password   string
	lastBackup time.Time
}

func (c *certState) thumbprint() []byte {
	s := sha1.Sum(c.cert.Raw)
	return s[:]
}

// systemDatabases are created with every server, in database_id order.
var systemDatabases = []string{"master", "tempdb", "model", "msdb"}

// initHierarchy builds the databases of cfg. A certificate named by a
// TDECertificate must exist in master with a private key.
func (s *Server) initHierarchy(now time.Time) error {
	for i, n := range systemDatabases {
		s.dbs = append(s.dbs, &dbState{name: n, id: i + 1, nextID: 256})
	}
	// The system certificates SQL Server creates in master (their names
	// are ##MS_…##; they have no exportable private key).
	for _, n := range []string{"##MS_SQLResourceSigningCertificate##", "##MS_AgentSigningCertificate##"} {
		c, err := newCertState(Certificate{Name: n, PrivateKey: NoPrivateKey}, now)
		if err != nil {
			return err
		}
		s.dbs[0].addCert(c)
	}
	for _, d := range s.cfg.Databases {
		db := s.findDB(d.Name)
		if db == nil {
			if d.Name == "" {
				return fmt.Errorf("mssqltest: a database without a name")
			}
			db = &dbState{name: d.Name, id: len(s.dbs) + 1, nextID: 256}
			s.dbs = append(s.dbs, db)
		}
		db.offline = d.Offline
		db.tde = d.TDECertificate
		if d.MasterKey != nil {
			mk, err := newMasterKey(d.MasterKey.Password, !d.MasterKey.NoServiceMasterKey, now)
			if err != nil {
				return err
			}
			db.mk = mk
		}
		for _, cc := range d.Certificates {
			if db.findCert(cc.Name) != nil {
				return fmt.Errorf("mssqltest: database %s: certificate %s twice", d.Name, cc.Name)
			}
			prot := cc.PrivateKey
			if prot == "" {
				prot = ByMasterKey
			}
			if prot == ByMasterKey && db.mk == nil {
				return fmt.Errorf("mssqltest: database %s: certificate %s is protected by a master key the database does not have", d.Name, cc.Name)
			}
			c, err := newCertState(cc, now)
			if err != nil {
				return err
			}
			db.addCert(c)
		}
	}
	for _, db := range s.dbs {
		if db.tde == "" {
			continue
		}
		c := s.dbs[0].findCert(db.tde)
		if c == nil || c.key == nil {
			return fmt.Errorf("mssqltest: database %s: TDE certificate %s is not a certificate with a private key in master", db.name, db.tde)
		}
	}
	return nil
}

func newMasterKey(password string, bySMK bool, now time.Time) (*mkState, error) {
	mk := &mkState{key: make([]byte, smkLen), passwords: []string{password}, bySMK: bySMK, created: now, modified: now}
	if _, err := rand.Read(mk.key); err != nil {
		return nil, err
	}
	if _, err := rand.Read(mk.guid[:]); err != nil {
		return nil, err
	}
	mk.guid[6] = mk.guid[6]&0x0F | 0x40
	mk.guid[8] = mk.guid[8]&0x3F | 0x80
	return mk, nil
}

func newCertState(cc Certificate, now time.Time) (*certState, error) {
	prot := cc.PrivateKey
	if prot == "" {
		prot = ByMasterKey
	}
	subject := cc.Subject
	if subject == "" {
		subject = cc.Name
	}
	expiry := cc.Expiry
	if expiry.IsZero() {
		expiry = now.AddDate(1, 0, 0)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: subject},
		NotBefore:    now.Add(-time.Hour).UTC().Truncate(time.Second),
		NotAfter:     expiry.UTC().Truncate(time.Second),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	c := &certState{name: cc.Name, cert: cert, key: key, prot: prot, password: cc.Password}
	if prot == NoPrivateKey {
		c.key = nil
	}
	return c, nil
}

func (d *dbState) addCert(c *certState) {
	c.id = d.nextID
	d.nextID++
	d.certs = append(d.certs, c)
}

// findDB looks a database up by name (the server collation is case-insensitive).
func (s *Server) findDB(name string) *dbState {
	for _, d := range s.dbs {
		if strings.EqualFold(d.name, name) {
			return d
		}
	}
	return nil
}

func (d *dbState) findCert(name string) *certState {
	for _, c := range d.certs {
		if strings.EqualFold(c.name, name) {
			return c
		}
	}
	return nil
}

// canControl reports CONTROL on the database: through CONTROL SERVER or as
// the database's owner (Login.Databases).
func (l Login) canControl(db string) bool {
	return l.controlServer() || slices.ContainsFunc(l.Databases, func(n string) bool { return strings.EqualFold(n, db) })
}

// canAccess reports whether the login may USE the database: the guest user
// is enabled in master, tempdb and msdb.
func (l Login) canAccess(db string) bool {
	switch strings.ToLower(db) {
	case "master", "tempdb", "msdb":
		return true
	}
	return l.canControl(db)
}

// MasterKeyInfo is what the stand-in holds for a database master key.
type MasterKeyInfo struct {
	GUID             string // key_guid
	Key              []byte
	ServiceMasterKey bool // encrypted by the service master key
	Modified         time.Time
}

// MasterKeyOf returns database db's master key, if it has one.
func (s *Server) MasterKeyOf(db string) (MasterKeyInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.findDB(db)
	if d == nil || d.mk == nil {
		return MasterKeyInfo{}, false
	}
	return MasterKeyInfo{GUID: guidString(d.mk.guid), Key: append([]byte(nil), d.mk.key...), ServiceMasterKey: d.mk.bySMK, Modified: d.mk.modified}, true
}

// CertificateInfo is what the stand-in holds for a certificate.
type CertificateInfo struct {
	Thumbprint  []byte // SHA-1 of the DER certificate
	Protection  PrivateKeyProtection
	PrivateKey  crypto.Signer // nil without one
	LastBackup  time.Time     // pvt_key_last_backup_date; zero = never
	Certificate *x509.Certificate
}

// CertificateOf returns certificate name of database db.
func (s *Server) CertificateOf(db, name string) (CertificateInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.findDB(db)
	if d == nil {
		return CertificateInfo{}, false
	}
	c := d.findCert(name)
	if c == nil {
		return CertificateInfo{}, false
	}
	return CertificateInfo{Thumbprint: c.thumbprint(), Protection: c.prot, PrivateKey: c.key, LastBackup: c.lastBackup, Certificate: c.cert}, true
}

// RegenerateMasterKey replaces database db's master key with a new one, as
// ALTER MASTER KEY REGENERATE does: modify_date changes, the key_guid
// stays (unconfirmed), the protections stay.
func (s *Server) RegenerateMasterKey(db string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.findDB(db)
	if d == nil || d.mk == nil {
		return fmt.Errorf("mssqltest: database %s has no master key", db)
	}
	key := make([]byte, smkLen)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	d.mk.key = key
	d.mk.modified = s.cfg.Clock()
	return nil
}

// AddCertificate creates a certificate in database db, as CREATE
// CERTIFICATE … WITH SUBJECT does.
func (s *Server) AddCertificate(db string, cc Certificate) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.findDB(db)
	if d == nil {
		return fmt.Errorf("mssqltest: no database %s", db)
	}
	if d.findCert(cc.Name) != nil {
		return fmt.Errorf("mssqltest: certificate %s exists in %s", cc.Name, db)
	}
	c, err := newCertState(cc, s.cfg.Clock())
	if err != nil {
		return err
	}
	d.addCert(c)
	return nil
}

// DropCertificate removes a certificate, as DROP CERTIFICATE does.
func (s *Server) DropCertificate(db, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.findDB(db)
	if d == nil || d.findCert(name) == nil {
		return fmt.Errorf("mssqltest: no certificate %s in %s", name, db)
	}
	d.certs = slices.DeleteFunc(d.certs, func(c *certState) bool { return strings.EqualFold(c.name, name) })
	return nil
}

// guidString formats a GUID the way SQL Server prints a uniqueidentifier.
func guidString(g [16]byte) string {
	return fmt.Sprintf("%X-%X-%X-%X-%X", g[0:4], g[4:6], g[6:8], g[8:10], g[10:])
}
