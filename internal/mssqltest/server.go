// Package mssqltest is a SQL Server stand-in for tests, in the spirit of
// net/http/httptest: a small server on 127.0.0.1 that speaks the real TDS
// wire protocol (PRELOGIN, TLS inside PRELOGIN or TDS 8 strict, LOGIN7, SQL
// batches, attention) well enough for github.com/microsoft/go-mssqldb and
// FreeTDS. It understands a few SELECT expressions, BACKUP / RESTORE
// SERVICE MASTER KEY, writing key files in its own format (see OpenKeyFile),
// and the hierarchy below it: databases, database master keys, certificates
// and TDE (hierarchy.go), their catalog views and their BACKUP, RESTORE,
// OPEN and CREATE … FROM FILE statements.
package mssqltest

import (
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// EncryptionMode is the server's TLS policy.
type EncryptionMode int

// Encryption modes.
const (
	// EncryptOff supports TLS without requiring it: OFF→OFF (only LOGIN7
	// encrypted), ON→ON, NOT_SUP→NOT_SUP.
	EncryptOff EncryptionMode = iota
	// EncryptRequired is "force encryption": the whole session is TLS; a
	// client that sends NOT_SUP is disconnected.
	EncryptRequired
	// EncryptNotSupported has no TLS at all.
	EncryptNotSupported
	// EncryptStrict is TDS 8.0: TLS first (ALPN tds/8.0), PRELOGIN inside TLS.
	EncryptStrict
)

// Login is a SQL login accepted by the stand-in.
type Login struct {
	User, Password string
	// ControlServer=false makes BACKUP/RESTORE SERVICE MASTER KEY fail with 15247.
	ControlServer bool
	// Sysadmin: a member of the sysadmin fixed server role. It holds every
	// permission (CONTROL SERVER too) and no DENY applies to it; only
	// sysadmin may run master.sys.xp_delete_files (else Msg 229).
	Sysadmin bool
	// BulkAdmin: ADMINISTER BULK OPERATIONS granted, directly or through
	// the bulkadmin fixed server role. CONTROL SERVER implies it, as on a
	// real server; without either, OPENROWSET(BULK …) fails with Msg 4834.
	BulkAdmin bool
	// DenyBulk: DENY ADMINISTER BULK OPERATIONS TO the login. A DENY wins
	// over CONTROL SERVER (not over sysadmin), as on a real server.
	DenyBulk bool
	// Databases the login owns (db_owner: CONTROL on the database) without
	// CONTROL SERVER. CONTROL SERVER covers every database.
	Databases []string
	// ViewServerState: VIEW SERVER STATE granted (sys.dm_database_encryption_keys
	// needs it); CONTROL SERVER implies it.
	ViewServerState bool
}

// controlServer reports CONTROL SERVER, held directly or through sysadmin.
func (l Login) controlServer() bool { return l.Sysadmin || l.ControlServer }

// administerBulk reports ADMINISTER BULK OPERATIONS as granted (what
// HAS_PERMS_BY_NAME answers): through sysadmin, CONTROL SERVER or a grant
// (bulkadmin), unless denied.
func (l Login) administerBulk() bool {
	if l.Sysadmin {
		return true
	}
	return !l.DenyBulk && (l.ControlServer || l.BulkAdmin)
}

// Config configures a Server. Zero values get defaults.
type Config struct {
	Logins         []Login
	ServerName     string // @@SERVERNAME; default "STANDIN"
	MachineName    string // default: ServerName before `\`
	InstanceName   string // "" = default instance (NULL)
	ProductVersion string // default "16.0.4135.4"
	Edition        string // default "Developer Edition (64-bit)"
	Encryption     EncryptionMode
	// BulkRequiresSysadmin models SQL Server on Linux before 2022 CU24 and
	// 2025 CU3: only sysadmin may run OPENROWSET(BULK …); a grant of
	// ADMINISTER BULK OPERATIONS or bulkadmin does not help there (see
	// learn.microsoft.com/sql/linux/sql-server-linux-bulk-operations).
	BulkRequiresSysadmin bool
	Certificate          *tls.Certificate // nil: throw-away self-signed cert
	// Undecryptable lists what the instance's current service master key
	// protects but can no longer decrypt. RESTORE SERVICE MASTER KEY
	// without FORCE then fails the way SQL Server does (Msg 15329 for the
	// key itself, 15320 for a credential, 15393 for a linked login) and
	// changes nothing; with FORCE it replaces the key, warns about each
	// (15585, 15584, 15593 as informational messages) and they are lost.
	Undecryptable []Undecryptable
	// Databases are the user databases and the keys of every database
	// (see hierarchy.go); master, tempdb, model and msdb always exist.
	Databases []Database
	// MapPath maps a server-side path to a local one; nil = identity.
	MapPath func(serverPath string) (string, error)
	// Logf is an optional debug log. It never receives passwords or statement text.
	Logf  func(format string, args ...any)
	Clock func() time.Time
}

// SecretKind is what an Undecryptable entry is.
type SecretKind string

// Kinds of secrets the service master key protects.
const (
	SecretServiceMasterKey SecretKind = "service master key" // the current key itself
	SecretCredential       SecretKind = "credential"
	SecretLinkedLogin      SecretKind = "linked login" // a linked server login's password
)

// Undecryptable is a secret under the current service master key that no
// longer decrypts.
type Undecryptable struct {
	Kind SecretKind
	Name string // the credential or linked login; unused for the key itself
}

// Server is a running stand-in.
type Server struct {
	cfg    Config
	ln     net.Listener
	cert   tls.Certificate
	caDir  string
	caFile string

	mu       sync.Mutex
	smk      []byte
	broken   []Undecryptable
	stmts    []StatementKind
	faults   []*faultEntry
	conns    map[net.Conn]struct{}
	nextSPID uint16
	dbs      []*dbState

	closed    chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// NewServer starts a stand-in on 127.0.0.1:0.
func NewServer(cfg Config) (*Server, error) {
	if cfg.ServerName == "" {
		cfg.ServerName = "STANDIN"
	}
	if cfg.MachineName == "" {
		cfg.MachineName, _, _ = strings.Cut(cfg.ServerName, `\`)
	}
	if cfg.ProductVersion == "" {
		cfg.ProductVersion = "16.0.4135.4"
	}
	if cfg.Edition == "" {
		cfg.Edition = "Developer Edition (64-bit)"
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	s := &Server{cfg: cfg, conns: map[net.Conn]struct{}{}, closed: make(chan struct{}), nextSPID: 51,
		broken: append([]Undecryptable(nil), cfg.Undecryptable...)}
	s.smk = make([]byte, smkLen)
	if _, err := rand.Read(s.smk); err != nil {
		return nil, err
	}
	if err := s.initHierarchy(cfg.Clock()); err != nil {
		return nil, err
	}
	if cfg.Certificate != nil {
		s.cert = *cfg.Certificate
	} else {
		c, err := selfSignedCert(cfg.Clock())
		if err != nil {
			return nil, fmt.Errorf("mssqltest: certificate: %w", err)
		}
		s.cert = c
	}
	dir, err := os.MkdirTemp("", "mssqltest-ca-")
	if err != nil {
		return nil, err
	}
	s.caDir = dir
	s.caFile = filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(s.caFile, certPEM(&s.cert), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.ln = ln
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

func (s *Server) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.closed:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.logf("mssqltest: accept: %v", err)
			return
		}
		s.mu.Lock()
		select {
		case <-s.closed:
			s.mu.Unlock()
			c.Close()
			return
		default:
		}
		s.conns[c] = struct{}{}
		spid := s.nextSPID
		s.nextSPID++
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			s.serveConn(c, spid)
		}()
	}
}

// Addr is "127.0.0.1:PORT".
func (s *Server) Addr() string { return s.ln.Addr().String() }

// CAFile is a PEM file with the server certificate (removed by Close).
func (s *Server) CAFile() string { return s.caFile }

// DSN builds a go-mssqldb URL for this server. The encrypt parameter follows
// the server's mode unless params overrides it; where TLS applies,
// certificate=CAFile and hostnameincertificate=localhost are added.
func (s *Server) DSN(user, password string, params map[string]string) string {
	q := url.Values{}
	switch s.cfg.Encryption {
	case EncryptNotSupported:
		q.Set("encrypt", "disable")
	case EncryptOff:
		q.Set("encrypt", "false")
	case EncryptRequired:
		q.Set("encrypt", "true")
	case EncryptStrict:
		q.Set("encrypt", "strict")
	}
	for k, v := range params {
		q.Set(k, v)
	}
	if q.Get("encrypt") != "disable" {
		if _, ok := params["certificate"]; !ok {
			q.Set("certificate", s.caFile)
		}
		if _, ok := params["hostnameincertificate"]; !ok {
			q.Set("hostnameincertificate", "localhost")
		}
	}
	u := url.URL{Scheme: "sqlserver", User: url.UserPassword(user, password), Host: s.Addr(), RawQuery: q.Encode()}
	return u.String()
}

// Close stops the listener and all connections and waits for them.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
		os.RemoveAll(s.caDir)
	})
	return nil
}

// Statements lists the kinds of batches executed, in order.
func (s *Server) Statements() []StatementKind {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]StatementKind(nil), s.stmts...)
}

func (s *Server) record(k StatementKind) {
	s.mu.Lock()
	s.stmts = append(s.stmts, k)
	s.mu.Unlock()
}

// ServiceMasterKey is the instance's current 32-byte SMK.
func (s *Server) ServiceMasterKey() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.smk...)
}

// Undecryptable lists what still does not decrypt under the current key:
// Config.Undecryptable until a RESTORE … FORCE drops it.
func (s *Server) Undecryptable() []Undecryptable {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Undecryptable(nil), s.broken...)
}

func (s *Server) findLogin(user, password string) (Login, bool) {
	for _, l := range s.cfg.Logins {
		if l.User == user && l.Password == password {
			return l, true
		}
	}
	return Login{}, false
}

// versionParts splits ProductVersion into major, minor, build.
func (s *Server) versionParts() (maj, mnr, build int) {
	parts := strings.Split(s.cfg.ProductVersion, ".")
	num := func(i int) int {
		if i < len(parts) {
			n, _ := strconv.Atoi(parts[i])
			return n
		}
		return 0
	}
	return num(0), num(1), num(2)
}

func (s *Server) versionString() string {
	maj, _, _ := s.versionParts()
	year := map[int]string{11: "2012", 12: "2014", 13: "2016", 14: "2017", 15: "2019", 16: "2022", 17: "2025"}[maj]
	return fmt.Sprintf("Microsoft SQL Server %s (RTM) - %s (X64) \n\tCopyright (C) Microsoft Corporation\n\t%s on Linux (mssqltest stand-in)",
		year, s.cfg.ProductVersion, s.cfg.Edition)
}
