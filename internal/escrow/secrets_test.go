package escrow

import (
	"net/url"
	"strings"
	"testing"

	"github.com/keyescrow/keyescrow/internal/mssqltest"
)

// leakForms are the ways a secret could show up in text.
func leakForms(s string) []string {
	return []string{s, url.QueryEscape(s), url.PathEscape(s), strings.ReplaceAll(s, "'", "''")}
}

func TestSecretsNeverReachTheLogsOrTheReceipt(t *testing.T) {
	const (
		pw    = `Backup-Pa55'w0rd!`
		wrong = "Wr0ng-Dsn-Pa55!"
	)
	cases := []struct {
		name  string
		mod   func(*setup)
		fault *mssqltest.Fault
	}{
		{name: "a successful backup"},
		{name: "a login failure", mod: func(s *setup) { s.pass = wrong }},
		{name: "a backup SQL Server refuses", fault: &mssqltest.Fault{Kind: mssqltest.KindBackupSMK, Error: &mssqltest.Error{Number: 15118, Class: 16, Message: "Password validation failed."}}},
		{name: "a dropped connection", fault: &mssqltest.Fault{Kind: mssqltest.KindBackupSMK, Drop: true}},
		{name: "a password the server rejects", mod: func(s *setup) { s.password = "weak'pass" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(s *setup) {
				s.password = pw
				if tc.mod != nil {
					tc.mod(s)
				}
			})
			if tc.fault != nil {
				e.srv.Inject(*tc.fault)
			}
			rec, err := e.backup()
			doc := string(receiptJSON(t, rec))
			var text strings.Builder
			if werr := rec.WriteText(&text); werr != nil {
				t.Fatal(werr)
			}
			logs := e.logs.String()
			if e.backupRan() && !strings.Contains(logs, "level=DEBUG") {
				t.Fatalf("the debug logs are empty; the test proves nothing:\n%s", logs)
			}
			outputs := map[string]string{"logs": logs, "receipt JSON": doc, "receipt text": text.String()}
			if err != nil {
				outputs["error"] = err.Error()
			}
			if b := e.memObjects(); len(b) > 0 {
				outputs["stored receipt"] = string(e.memRead(receiptKey(e.memKey())))
			}
			for _, secret := range []string{pw, "weak'pass", adminPass, wrong, e.dsn} {
				for _, form := range leakForms(secret) {
					for where, out := range outputs {
						if strings.Contains(out, form) {
							t.Errorf("the %s contain the secret %q:\n%s", where, form, out)
						}
					}
				}
			}
		})
	}
}
