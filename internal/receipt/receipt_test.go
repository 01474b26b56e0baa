package receipt

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestJSONCarriesEveryContractFieldAndEmptyListsNotNull(t *testing.T) {
	r := &Receipt{Status: StatusFailed, Tool: "keyescrow", Kind: KindServiceMasterKey, StartedAt: time.Unix(0, 0).UTC()}
	b, err := r.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"status", "tool", "version", "run_id", "host", "instance", "kind", "started_at", "finished_at", "file", "waived", "destinations", "exit_code"} {
		if _, ok := m[k]; !ok {
			t.Errorf("field %q missing", k)
		}
	}
	if string(mustJSON(m["waived"])) != "[]" || string(mustJSON(m["destinations"])) != "[]" {
		t.Errorf("empty lists must be [], got %s", b)
	}
	if !bytes.HasSuffix(b, []byte("}\n")) || bytes.Count(b, []byte("\n}")) != 1 {
		t.Errorf("not one document ending in a newline: %q", b)
	}
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }

func TestDestinationFieldsAreNamedAsInTheContract(t *testing.T) {
	d := Destination{Name: "n", Type: "s3", Location: "s3://b/k", VersionID: "v", Region: "us-east-2",
		Retention: &Retention{Mode: "COMPLIANCE", Until: time.Unix(100, 0).UTC()},
		Checksum:  Checksum{Algorithm: ChecksumSHA256, Local: "aa", Remote: "aa", Match: true}, ReadBack: true, Status: DestVerified}
	b, _ := json.Marshal(d)
	for _, k := range []string{`"name"`, `"type"`, `"location"`, `"version_id"`, `"region"`, `"retention":{"mode":"COMPLIANCE","until"`, `"checksum":{"algorithm":"SHA256","local":"aa","remote":"aa","match":true}`, `"read_back":true`, `"status":"verified"`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("%s lacks %s", b, k)
		}
	}
}

func TestTextReceiptHasOneLinePerDestination(t *testing.T) {
	r := &Receipt{Status: StatusOK, Kind: KindServiceMasterKey, Host: "h", Instance: "i", RunID: "r",
		File:         &File{Name: "f.key", Bytes: 3, SHA256: "ab"},
		Destinations: []Destination{{Name: "a", Type: "file", Status: DestVerified}, {Name: "b", Type: "file", Status: DestFailed, Error: &Error{Code: 5, Message: "boom"}}}}
	var buf bytes.Buffer
	if err := r.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ok service-master-key host=h instance=i run=r file=f.key") || !strings.Contains(lines[2], "error(5): boom") {
		t.Fatalf("%q", buf.String())
	}
}

func TestTextReceiptOfACertificateRestoreNamesTheItemItsKeyAndThumbprint(t *testing.T) {
	match := true
	r := &Receipt{Status: StatusOK, Kind: KindCertificate, Host: "h", Instance: "i", RunID: "r",
		Item: &Item{Kind: KindCertificate, Database: "master", Name: "TDECert"},
		File: &File{Name: "TDECert.cer", Bytes: 3, SHA256: "ab"},
		Restore: &Restore{Out: "/x/tde.cer", PrivateKeyOut: "/x/tde.pvk", Applied: true, Drill: true, Server: "SCRATCH",
			Thumbprint: "0A1B", ThumbprintMatch: &match}}
	var buf bytes.Buffer
	if err := r.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ok certificate database=master name=TDECert host=h", "private key written to /x/tde.pvk (owner-only)",
		"drill: restored into the scratch server SCRATCH", "certificate thumbprint 0A1B, matches the receipt and has its private key: true"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("the text lacks %q:\n%s", want, buf.String())
		}
	}
}
