package escrow

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/mssqltest"
	"github.com/keyescrow/keyescrow/internal/receipt"
)

// Logins of the remote-mode tests.
const (
	sysUser     = "ci-deployer"
	sysPass     = "Sys4dmin-Pa55!dsn"
	noBulkUser  = "nobulk"
	noBulkPass  = "N0Bulk-Pa55!dsn"
	winKeysPath = `C:\Program Files\Microsoft SQL Server\keys it's`
)

// remote sets backup.remote with a sysadmin login, the usual shape of a CI
// deployment identity; mods may change the login after.
func remote(s *setup) {
	s.remote = true
	s.server.Logins = append(s.server.Logins,
		mssqltest.Login{User: sysUser, Password: sysPass, Sysadmin: true},
		mssqltest.Login{User: noBulkUser, Password: noBulkPass, ControlServer: true, DenyBulk: true},
	)
	s.user, s.pass = sysUser, sysPass
}

// keyFolder lists the server's key folder.
func (e *env) keyFolder() []string {
	e.t.Helper()
	entries, err := os.ReadDir(e.keyDir)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, en := range entries {
		out = append(out, en.Name())
	}
	return out
}

func TestRemoteBackupReadsTheKeyOverSQLArchivesItAndRemovesItFromTheServer(t *testing.T) {
	for _, tt := range []struct {
		name string
		mods []func(*setup)
	}{
		{"a POSIX server folder", []func(*setup){remote}},
		// A Linux CI runner backing up a Windows server: the folder exists
		// only on the server, and nothing checks it on this host.
		{"a Windows server folder this host does not have", []func(*setup){remote, func(s *setup) { s.serverDir = winKeysPath }}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.mods...)
			rec, err := e.backup()
			if err != nil {
				t.Fatalf("Backup: %v\nlogs:\n%s", err, e.logs)
			}
			if rec.Status != receipt.StatusOK || rec.ExitCode != 0 || rec.File == nil || rec.File.Name != e.keyFileName() {
				t.Fatalf("receipt %+v", rec)
			}
			stored := e.memRead(e.memKey())
			if _, err := mssqltest.OpenKeyFile(stored, backupPassword); err != nil {
				t.Fatalf("the archived copy does not open: %v", err)
			}
			if !bytes.Equal(stored, mustReadFile(t, e.fileDir, e.fileKey())) {
				t.Fatal("the destinations hold different bytes")
			}
			for _, d := range rec.Destinations {
				if d.Status != receipt.DestVerified || !d.ReadBack || d.Checksum.Local != rec.File.SHA256 || d.Checksum.Remote != rec.File.SHA256 {
					t.Errorf("%s: %+v", d.Name, d)
				}
			}
			want := []mssqltest.StatementKind{mssqltest.KindBackupSMK, mssqltest.KindReadFile, mssqltest.KindDeleteFiles, mssqltest.KindReadFile}
			if got := afterInfo(e.srv.Statements()); !slices.Equal(got, want) {
				t.Errorf("statements %v, want %v (backup, read back, remove, prove removed)", got, want)
			}
			if left := e.keyFolder(); len(left) != 0 {
				t.Errorf("the server's key folder still holds %v", left)
			}
			if !strings.Contains(e.logs.String(), "removed the key file from the server") {
				t.Errorf("the log does not say the file was removed:\n%s", e.logs)
			}
		})
	}
}

// afterInfo drops the ping and the identity query before the backup.
func afterInfo(kinds []mssqltest.StatementKind) []mssqltest.StatementKind {
	i := slices.Index(kinds, mssqltest.KindBackupSMK)
	if i < 0 {
		return nil
	}
	return kinds[i:]
}

func TestRemoteBackupLeavesTheFileOnTheServerWhenItMayNotRemoveIt(t *testing.T) {
	for _, tt := range []struct {
		name     string
		mods     []func(*setup)
		wantLog  []string
		attempts bool // xp_delete_files was tried
	}{
		{
			name:    "keep_local keeps it without trying",
			mods:    []func(*setup){remote, func(s *setup) { s.keepLocal = true }},
			wantLog: []string{"keep_local: the key file stays on the server"},
		},
		{
			name:     "a login with CONTROL SERVER but not sysadmin",
			mods:     []func(*setup){remote, func(s *setup) { s.user, s.pass = adminUser, adminPass }},
			wantLog:  []string{"the key file remains on the server", "Msg 229", "EXEC master.sys.xp_delete_files N'"},
			attempts: true,
		},
		{
			name:     "a server older than SQL Server 2019 (2017 CU18)",
			mods:     []func(*setup){remote, func(s *setup) { s.server.ProductVersion = "13.0.6300.2" }},
			wantLog:  []string{"the key file remains on the server", "Msg 2812", "SQL Server 2019"},
			attempts: true,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.mods...)
			rec, err := e.backup()
			if err != nil || rec.Status != receipt.StatusOK || rec.ExitCode != 0 {
				t.Fatalf("the run is not ok: %v %+v\n%s", err, rec, e.logs)
			}
			if left := e.keyFolder(); !slices.Equal(left, []string{e.keyFileName()}) {
				t.Fatalf("the server's key folder holds %v, want the run's key file", left)
			}
			logs := e.logs.String()
			for _, w := range append(tt.wantLog, e.serverDir) {
				if !strings.Contains(logs, w) {
					t.Errorf("the log does not say %q:\n%s", w, logs)
				}
			}
			if got := slices.Contains(e.srv.Statements(), mssqltest.KindDeleteFiles); got != tt.attempts {
				t.Errorf("xp_delete_files tried: %v, want %v", got, tt.attempts)
			}
		})
	}
}

func TestRemoteBackupFailuresKeepTheFileOnTheServerAndSaySo(t *testing.T) {
	for _, tt := range []struct {
		name       string
		mods       []func(*setup)
		fault      *mssqltest.Fault
		code       int
		want       []string
		backupRan  bool
		fileStays  bool
		nothingOut bool // no destination received anything
	}{
		{
			name:       "a login denied ADMINISTER BULK OPERATIONS is refused before BACKUP",
			mods:       []func(*setup){remote, func(s *setup) { s.user, s.pass = noBulkUser, noBulkPass }},
			code:       exitcode.SQLServer,
			want:       []string{"ADMINISTER BULK OPERATIONS", "GRANT ADMINISTER BULK OPERATIONS TO [login]", "nothing was exported"},
			nothingOut: true,
		},
		{
			name: "SQL Server on Linux before 2022 CU24 refuses a CONTROL SERVER login the read",
			mods: []func(*setup){remote, func(s *setup) {
				s.user, s.pass = adminUser, adminPass
				s.server.BulkRequiresSysadmin = true
			}},
			code:       exitcode.SQLServer,
			want:       []string{"Msg 4834", "GRANT ADMINISTER BULK OPERATIONS TO [login]", "the key file stays on the server at", "xp_delete_files"},
			backupRan:  true,
			fileStays:  true,
			nothingOut: true,
		},
		{
			name:       "an incomplete transfer",
			mods:       []func(*setup){remote},
			fault:      &mssqltest.Fault{Kind: mssqltest.KindReadFile, ShortRead: 1},
			code:       exitcode.SQLServer,
			want:       []string{"the transfer was incomplete", "the key file stays on the server at"},
			backupRan:  true,
			fileStays:  true,
			nothingOut: true,
		},
		{
			name:      "a destination that fails its proof",
			mods:      []func(*setup){remote, func(s *setup) { s.mem.Region = homeRegion; s.memDest.Region = "" }},
			code:      exitcode.Policy,
			backupRan: true,
			fileStays: true,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.mods...)
			if tt.fault != nil {
				e.srv.Inject(*tt.fault)
			}
			rec, err := e.backup()
			if exitcode.Code(err) != tt.code || rec.ExitCode != tt.code || rec.Status != receipt.StatusFailed {
				t.Fatalf("exit %d (%v), receipt %+v; want %d", exitcode.Code(err), err, rec, tt.code)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the error %q does not say %q", err, w)
				}
			}
			if got := e.backupRan(); got != tt.backupRan {
				t.Errorf("BACKUP ran: %v, want %v", got, tt.backupRan)
			}
			if slices.Contains(e.srv.Statements(), mssqltest.KindDeleteFiles) {
				t.Error("xp_delete_files ran after a failure")
			}
			left := e.keyFolder()
			if tt.fileStays != (len(left) == 1) {
				t.Errorf("the server's key folder holds %v; the file should stay: %v", left, tt.fileStays)
			}
			if tt.fileStays && !strings.Contains(e.logs.String()+err.Error(), e.keyFileName()) {
				t.Errorf("neither the log nor the error names the file left on the server:\n%s", e.logs)
			}
			if tt.nothingOut {
				e.assertNothingWritten()
			}
		})
	}
}
