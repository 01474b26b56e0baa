package main_test

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/keyescrow/keyescrow/internal/mssqltest"
	rcpt "github.com/keyescrow/keyescrow/internal/receipt"
	"github.com/keyescrow/keyescrow/internal/sign"
	"github.com/keyescrow/keyescrow/internal/testutil"
)

// The hierarchy under fire: every campaign agent's stand-in has master's
// database master key and a TDE certificate (TDECert, protecting Sales),
// and the campaign runs `backup` too, with its faults aimed at the items'
// requests only (their folders database-master-key/ and certificate/):
// change detection's listings, receipt reads and Stats, and the items'
// writes, proofs (the HEADs and GETs after the first item PUT) and stored
// receipts. MinIO's stand-in is SQL Server 2019, so its certificate
// travels as a .cer with its .pvk; the others are 2022 (one .pfx).
// versitygw's agents seal a fresh password per copy (.password.age).
//
// After a backup that exits 0, every item the receipt names is checked
// straight against the server with the SDK (hierHonest): an archived
// item's copy, .pvk and stored receipt hold what the receipt records, at
// the recorded version, locked; an unchanged item's newest copy is still
// there, its stored receipt is signed by the agent's pinned key, records
// that very copy, and holds the live key. A failed or missing item in a
// run that exits 0 is a false success.
//
// The attack forged-item plants, with the agent's credentials, a newer
// "copy" of TDECert whose receipt claims the live thumbprint (its
// signature no longer verifies), or whose receipt is the genuine, signed
// one of master's database master key, or writes other bytes over the
// newest genuine copy under its own name; the next backup must not rely
// on it (its TDECert is archived, or unchanged on a genuine copy), and a
// restore of TDECert (when the binary restores items) must write a
// genuine copy.

// hierCampaignDatabases is the campaign stand-in's small hierarchy.
func hierCampaignDatabases() []mssqltest.Database {
	return []mssqltest.Database{
		{Name: "master", MasterKey: &mssqltest.MasterKey{Password: masterDMKPassword},
			Certificates: []mssqltest.Certificate{{Name: "TDECert", Subject: "CN=TDE certificate", Expiry: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)}}},
		{Name: "Sales", TDECertificate: "TDECert"},
	}
}

// campaignSQLVersion is the stand-in's version per backend: MinIO's is
// SQL Server 2019 (.cer and .pvk), the others' 2022 (.pfx).
func campaignSQLVersion(backend string) string {
	if backend == "minio" {
		return "15.0.4355.3"
	}
	return ""
}

func hierCampaignConfig(backend string) mssqltest.Config {
	return mssqltest.Config{Databases: hierCampaignDatabases(), ProductVersion: campaignSQLVersion(backend)}
}

// itemPaths are the folders of the items' copies: a backup's faults hit
// only requests about them.
var itemPaths = []string{"/database-master-key/", "/certificate/"}

// itemCopyName is an item copy's file name: <name>-<time>-<run>.<ext>.
var itemCopyName = regexp.MustCompile(`^(.*)-(\d{8}T\d{6}Z)-([0-9a-f]+)\.(cer|pfx|key)$`)

// forgedItem is the attack on an item (see above).
var forgedItem = faultKind{name: "forged-item", attack: func(w *worker) error { return w.forgeItem() }}

// store is the worker's bucket or container, read and written straight
// with the SDK (never through the proxy or keyescrow).
type store interface {
	// key is the object key of a receipt's location ("" when it is not
	// in this bucket or container).
	key(location string) string
	// list returns the keys under prefix.
	list(ctx context.Context, prefix string) ([]string, error)
	// get reads a version ("" for the current one).
	get(ctx context.Context, key, version string) ([]byte, error)
	// locked checks the version's lock (S3: COMPLIANCE until at least a
	// day after since; Azurite has none, waived).
	locked(ctx context.Context, key, version string, since time.Time) error
	// put writes a new version with the agent's credentials, as keyescrow
	// would (checksum metadata, a lock), and returns its version id. claim
	// is the SHA-256 the metadata states ("": the data's).
	put(ctx context.Context, key string, data []byte, claim string) (string, error)
}

type s3Store struct {
	c      *s3.Client
	bucket string
}

func (s s3Store) key(loc string) string {
	k, _ := strings.CutPrefix(loc, "s3://"+s.bucket+"/")
	if k == loc {
		return ""
	}
	return k
}

func (s s3Store) list(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	p := s3.NewListObjectsV2Paginator(s.c, &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Contents {
			out = append(out, aws.ToString(o.Key))
		}
	}
	return out, nil
}

func (s s3Store) get(ctx context.Context, key, version string) ([]byte, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)}
	if version != "" {
		in.VersionId = aws.String(version)
	}
	out, err := s.c.GetObject(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("GetObject %s version %q: %w", key, version, err)
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}

func (s s3Store) locked(ctx context.Context, key, version string, since time.Time) error {
	h, err := s.c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key), VersionId: aws.String(version)})
	if err != nil {
		return fmt.Errorf("HeadObject %s version %q: %w", key, version, err)
	}
	mode, until := string(h.ObjectLockMode), h.ObjectLockRetainUntilDate
	if mode == "" {
		// versitygw answers a HEAD of a version that is no longer the
		// current one without its lock: GetObjectRetention has it.
		r, err := s.c.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: aws.String(s.bucket), Key: aws.String(key), VersionId: aws.String(version)})
		if err != nil {
			return fmt.Errorf("GetObjectRetention %s version %q: %w", key, version, err)
		}
		if r.Retention != nil {
			mode, until = string(r.Retention.Mode), r.Retention.RetainUntilDate
		}
	}
	if mode != "COMPLIANCE" || until == nil || until.Before(since.Add(24*time.Hour-2*time.Second)) {
		return fmt.Errorf("%s version %q: lock %q until %v, want COMPLIANCE for a day", key, version, mode, until)
	}
	return nil
}

func (s s3Store) put(ctx context.Context, key string, data []byte, claim string) (string, error) {
	sum := sha256.Sum256(data)
	claim = cmp.Or(claim, hex.EncodeToString(sum[:]))
	out, err := s.c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key), Body: bytes.NewReader(data),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256, ChecksumSHA256: aws.String(b64(sum[:])),
		ObjectLockMode: types.ObjectLockModeCompliance, ObjectLockRetainUntilDate: aws.Time(time.Now().Add(25 * time.Hour)),
		Metadata: map[string]string{"sha256": claim}})
	if err != nil {
		return "", err
	}
	return aws.ToString(out.VersionId), nil
}

type azStore struct {
	c *container.Client
	// marker precedes a blob's name in a location.
	marker string
}

func (s azStore) key(loc string) string {
	_, blob, ok := strings.Cut(loc, s.marker)
	if !ok {
		return ""
	}
	return blob
}

func (s azStore) list(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	pager := s.c.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &prefix})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, b := range page.Segment.BlobItems {
			out = append(out, *b.Name)
		}
	}
	return out, nil
}

// get reads the blob (Azurite keeps no versions: versioning is waived, and
// a receipt's version id is empty).
func (s azStore) get(ctx context.Context, key, version string) ([]byte, error) {
	if version != "" {
		return nil, fmt.Errorf("%s: version %q recorded, but Azurite keeps no versions", key, version)
	}
	r, err := s.c.NewBlobClient(key).DownloadStream(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("Get Blob %s: %w", key, err)
	}
	defer r.Body.Close()
	return io.ReadAll(r.Body)
}

func (azStore) locked(context.Context, string, string, time.Time) error { return nil }

func (s azStore) put(ctx context.Context, key string, data []byte, claim string) (string, error) {
	sum := sha256.Sum256(data)
	hexSum := cmp.Or(claim, hex.EncodeToString(sum[:]))
	_, err := s.c.NewBlockBlobClient(key).UploadBuffer(ctx, data, &blockblob.UploadBufferOptions{Metadata: map[string]*string{"sha256": &hexSum}})
	return "", err
}

// backupHost is the host name the worker's backups file their copies
// under: apart from archive's, so restore and verify of the archived key
// file never meet the stand-in's keys.
func (w *worker) backupHost() string { return w.host + "h" }

// backupArgs are a backup's arguments (clean: a clean run's, see
// worker.clean); hierMode adds what a faulted one changes.
func (w *worker) backupArgs(clean bool) []string {
	args := []string{"backup", "--config", w.e.cfgPath, "--json", "--set", "host=" + w.backupHost()}
	if w.sealTo != "" {
		args = append(args, "--set", "backup.password_env=", "--set", "backup.seal_to="+w.sealTo)
	}
	if clean {
		args = append(args, w.clean()...)
	}
	return args
}

// hierMode prepares the stand-in for a faulted backup, in turn: master's
// database master key regenerated (it is archived, TDECert unchanged),
// every item refreshed (hierarchy.refresh 1ms: both archived, TDECert with
// its .pvk on MinIO), or nothing changed (both unchanged: only change
// detection's requests). A fault on a write or on the proofs after it
// needs a write: never the last.
func (w *worker) hierMode(write bool) []string {
	w.backupN++
	mode := w.backupN % 3
	if write && mode == 2 {
		mode = w.backupN % 2
	}
	switch mode {
	case 0:
		if err := w.e.srv.RegenerateMasterKey("master"); err != nil {
			w.t.Fatal(err)
		}
	case 1:
		return []string{"--set", "hierarchy.refresh=1ms"}
	}
	return nil
}

// liveItems are the stand-in's items as they are now.
func (w *worker) liveItems() map[string]rcpt.Item {
	mk, ok := w.e.srv.MasterKeyOf("master")
	cert, ok2 := w.e.srv.CertificateOf("master", "TDECert")
	if !ok || !ok2 {
		w.t.Fatal("the stand-in lost master's key or TDECert")
	}
	mod := mk.Modified
	return map[string]rcpt.Item{
		rcpt.KindDatabaseMasterKey: {Kind: rcpt.KindDatabaseMasterKey, Database: "master", Name: rcpt.MasterKeyName, KeyGUID: mk.GUID, Modified: &mod},
		rcpt.KindCertificate:       {Kind: rcpt.KindCertificate, Database: "master", Name: "TDECert", Thumbprint: strings.ToUpper(hex.EncodeToString(cert.Thumbprint))},
	}
}

// sameKey is the test's own comparison of a recorded item with the live
// one: kind, database, name, and the key's identity (a master key's
// key_guid and modify_date, a certificate's thumbprint).
func sameKey(live, got rcpt.Item) string {
	switch {
	case got.Kind != live.Kind || !strings.EqualFold(got.Database, live.Database) || !strings.EqualFold(got.Name, live.Name):
		return fmt.Sprintf("it names %s %s/%s", got.Kind, got.Database, got.Name)
	case live.Kind == rcpt.KindDatabaseMasterKey && (!strings.EqualFold(got.KeyGUID, live.KeyGUID) || got.Modified == nil || !sameDatetime(*got.Modified, *live.Modified)):
		return fmt.Sprintf("key_guid %s modify_date %v, the live key has %s %v", got.KeyGUID, got.Modified, live.KeyGUID, live.Modified)
	case live.Kind == rcpt.KindCertificate && !strings.EqualFold(got.Thumbprint, live.Thumbprint):
		return fmt.Sprintf("thumbprint %s, the live certificate has %s", got.Thumbprint, live.Thumbprint)
	}
	return ""
}

// sameDatetime compares a modify_date read over SQL with the stand-in's
// own time: sys.symmetric_keys.modify_date is a datetime, which keeps
// ticks of 1/300 of a second (the stand-in truncates to them, SQL Server
// rounds). Keys regenerated between runs are seconds apart.
func sameDatetime(sql, live time.Time) bool {
	d := sql.Sub(live)
	return d > -4*time.Millisecond && d < 4*time.Millisecond
}

// hierReceipt is the part of a backup's receipt the item checks read.
type hierReceipt struct {
	File  *rcpt.File        `json:"file"`
	Items []rcpt.ItemResult `json:"items"`
}

// storedReceipt reads the stored receipt beside key (its current version)
// and opens it: with signing on, only a receipt signed by the worker's
// pinned key opens.
func (w *worker) storedReceipt(ctx context.Context, key string) (*rcpt.Stored, error) {
	raw, err := w.store.get(ctx, key+".receipt.json", "")
	if err != nil {
		return nil, fmt.Errorf("its stored receipt: %w", err)
	}
	payload := raw
	if pub := w.e.vars["KEYESCROW_TRUST_PUBLIC_KEYS"]; pub != "" {
		trust, err := sign.ParseTrust([]string{pub})
		if err != nil {
			return nil, err
		}
		if payload, _, err = trust.Open(raw); err != nil {
			return nil, fmt.Errorf("its stored receipt is not signed by the agent's key: %w", err)
		}
	}
	var st rcpt.Stored
	if err := json.Unmarshal(payload, &st); err != nil {
		return nil, fmt.Errorf("its stored receipt: %w", err)
	}
	if st.File == nil || st.Item == nil {
		return nil, errors.New("its stored receipt names no file or no item")
	}
	return &st, nil
}

// holds checks that key's version holds exactly f's bytes (and is locked).
func (w *worker) holds(ctx context.Context, key, version string, f *rcpt.File, since time.Time) error {
	got, err := w.store.get(ctx, key, version)
	if err != nil {
		return err
	}
	if int64(len(got)) != f.Bytes || sha(got) != f.SHA256 {
		return fmt.Errorf("%s version %q holds %d bytes SHA-256 %s, the receipt records %d bytes %s", key, version, len(got), sha(got), f.Bytes, f.SHA256)
	}
	return w.store.locked(ctx, key, version, since)
}

// stEntry is the stored receipt's entry for the object key, verified
// there (compared by key: Azure's location names the account's address,
// the proxy's or the server's).
func (w *worker) stEntry(st *rcpt.Stored, key string) *rcpt.Destination {
	for i, d := range st.Destinations {
		if w.store.key(d.Location) == key && d.Status == "verified" {
			return &st.Destinations[i]
		}
	}
	return nil
}

// hierHonest checks the items of a backup's receipt; each returned
// message is a false success. Whatever the exit code, an item said to be
// archived or unchanged must be so; with exit 0 every selected item must
// be one or the other.
func (w *worker) hierHonest(stdout string, since time.Time, exit0 bool) []string {
	var rec hierReceipt
	if err := json.Unmarshal([]byte(stdout), &rec); err != nil {
		return []string{fmt.Sprintf("the receipt: %v", err)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var bad []string
	fail := func(it rcpt.Item, format string, args ...any) {
		bad = append(bad, it.Label()+": "+fmt.Sprintf(format, args...))
	}
	live := w.liveItems()
	for _, kind := range []string{rcpt.KindDatabaseMasterKey, rcpt.KindCertificate} {
		want := live[kind]
		i := slices.IndexFunc(rec.Items, func(r rcpt.ItemResult) bool {
			return r.Kind == kind && strings.EqualFold(r.Database, want.Database) && strings.EqualFold(r.Name, want.Name)
		})
		if i < 0 {
			if exit0 {
				fail(want, "not in the receipt's items")
			}
			continue
		}
		res := rec.Items[i]
		if msg := sameKey(want, res.Item); msg != "" {
			fail(want, "the receipt's item is not the live key: %s", msg)
		}
		switch res.Action {
		case rcpt.ItemArchived:
			if res.File == nil || len(res.Destinations) == 0 {
				fail(want, "archived without a file or destinations")
				continue
			}
			w.tallyItem(res.Action)
			for _, d := range res.Destinations {
				if err := w.archivedHolds(ctx, want, res, d, since); err != nil {
					fail(want, "archived, but at %s: %v", d.Name, err)
				}
			}
		case rcpt.ItemUnchanged:
			if res.Newest == nil || len(res.Newest.Destinations) == 0 {
				fail(want, "unchanged without a newest copy")
				continue
			}
			w.tallyItem(res.Action)
			for _, p := range res.Newest.Destinations {
				if err := w.newestHolds(ctx, want, p, since); err != nil {
					fail(want, "unchanged, but its newest copy at %s: %v", p.Name, err)
				}
			}
		default:
			if exit0 {
				fail(want, "action %q (%s) in a run that exited 0", res.Action, res.Reason)
			}
		}
	}
	return bad
}

// archivedHolds checks an archived item's copy at one destination: the
// copy, its .pvk and its stored receipt, as the run's receipt records.
func (w *worker) archivedHolds(ctx context.Context, live rcpt.Item, res rcpt.ItemResult, d rcpt.Destination, since time.Time) error {
	if d.Status != "verified" {
		return fmt.Errorf("status %q", d.Status)
	}
	key := w.store.key(d.Location)
	if key == "" || path.Base(key) != res.File.Name || !strings.Contains(key, "/"+live.Kind+"/") {
		return fmt.Errorf("location %q is not the item's folder and file %s", d.Location, res.File.Name)
	}
	if err := w.holds(ctx, key, d.VersionID, res.File, since); err != nil {
		return err
	}
	if (res.File.PrivateKey != nil) != (d.PrivateKey != nil) || (res.File.PrivateKey != nil) != strings.HasSuffix(key, ".cer") {
		return fmt.Errorf("file %s: private key %v at the destination %v", res.File.Name, res.File.PrivateKey, d.PrivateKey)
	}
	if (w.sealTo != "") != (d.SealedPassword != nil) {
		return fmt.Errorf("sealed password %v at the destination, sealing to %q", d.SealedPassword, w.sealTo)
	}
	if sp := d.SealedPassword; sp != nil {
		if w.store.key(sp.Location) != key+".password.age" {
			return fmt.Errorf("the sealed password is at %q", sp.Location)
		}
		if err := w.holds(ctx, key+".password.age", sp.VersionID, &rcpt.File{Bytes: sp.Bytes, SHA256: sp.SHA256}, since); err != nil {
			return fmt.Errorf("its sealed password: %w", err)
		}
	}
	if pk := d.PrivateKey; pk != nil {
		pvk := w.store.key(pk.Location)
		if pvk != strings.TrimSuffix(key, ".cer")+".pvk" {
			return fmt.Errorf("the .pvk is at %q", pk.Location)
		}
		if err := w.holds(ctx, pvk, pk.VersionID, res.File.PrivateKey, since); err != nil {
			return fmt.Errorf("its .pvk: %w", err)
		}
	}
	st, err := w.storedReceipt(ctx, key)
	if err != nil {
		return err
	}
	if msg := sameKey(live, *st.Item); msg != "" {
		return fmt.Errorf("its stored receipt holds another key: %s", msg)
	}
	if st.File.Name != res.File.Name || st.File.SHA256 != res.File.SHA256 || st.File.Bytes != res.File.Bytes {
		return fmt.Errorf("its stored receipt records file %s %s, the run %s %s", st.File.Name, st.File.SHA256, res.File.Name, res.File.SHA256)
	}
	e := w.stEntry(st, key)
	if e == nil || e.VersionID != d.VersionID {
		return fmt.Errorf("its stored receipt does not record version %q verified at %s", d.VersionID, d.Location)
	}
	if d.PrivateKey != nil && (e.PrivateKey == nil || e.PrivateKey.VersionID != d.PrivateKey.VersionID) {
		return errors.New("its stored receipt does not record the .pvk's version")
	}
	if d.SealedPassword != nil && (e.SealedPassword == nil || e.SealedPassword.VersionID != d.SealedPassword.VersionID || e.SealedPassword.SHA256 != d.SealedPassword.SHA256) {
		return errors.New("its stored receipt does not record the sealed password's version")
	}
	return nil
}

// newestHolds checks an unchanged item's newest copy at one destination:
// it is there, its stored receipt is genuine, records that very version
// (and its .pvk's) and holds the live key.
func (w *worker) newestHolds(ctx context.Context, live rcpt.Item, p rcpt.CopyPlace, since time.Time) error {
	key := w.store.key(p.Location)
	if key == "" || !strings.Contains(key, "/"+live.Kind+"/") {
		return fmt.Errorf("location %q is not in the item's folder", p.Location)
	}
	if slices.ContainsFunc(w.planted, func(f string) bool { return path.Base(key) == f }) {
		w.tally.mu.Lock()
		w.tally.itemForgeriesCounted++
		w.tally.mu.Unlock()
		return fmt.Errorf("it is a forgery this campaign planted (%s)", p.Location)
	}
	st, err := w.storedReceipt(ctx, key)
	if err != nil {
		return err
	}
	if msg := sameKey(live, *st.Item); msg != "" {
		return fmt.Errorf("it holds another key: %s", msg)
	}
	e := w.stEntry(st, key)
	if e == nil || e.VersionID != p.VersionID || st.File.Name != path.Base(key) {
		return fmt.Errorf("its stored receipt does not record version %q of %s", p.VersionID, p.Location)
	}
	// The lock was checked when it was written; a day-long lock of a copy
	// made earlier in the campaign still holds well past since-24h.
	if err := w.holds(ctx, key, p.VersionID, st.File, since.Add(-23*time.Hour)); err != nil {
		return err
	}
	if st.File.PrivateKey != nil {
		if e.PrivateKey == nil {
			return errors.New("its stored receipt names no .pvk there")
		}
		if err := w.holds(ctx, strings.TrimSuffix(key, ".cer")+".pvk", e.PrivateKey.VersionID, st.File.PrivateKey, since.Add(-23*time.Hour)); err != nil {
			return fmt.Errorf("its .pvk: %w", err)
		}
	}
	if st.Password != nil && st.Password.Mode == "sealed" {
		sp := e.SealedPassword
		if sp == nil {
			return errors.New("its stored receipt names no sealed password there")
		}
		if err := w.holds(ctx, key+".password.age", sp.VersionID, &rcpt.File{Bytes: sp.Bytes, SHA256: sp.SHA256}, since.Add(-23*time.Hour)); err != nil {
			return fmt.Errorf("its sealed password: %w", err)
		}
	}
	return nil
}

func (w *worker) tallyItem(action string) {
	w.tally.mu.Lock()
	defer w.tally.mu.Unlock()
	w.tally.itemsChecked[action]++
}

// forgeItem forges TDECert's newest copy in the backup host's folder, in
// turn: a newer forged copy whose bytes are not the certificate's and
// whose receipt claims them with the live thumbprint (the genuine newest
// receipt with names, checksums and version ids replaced, so its signature
// no longer verifies); the same whose receipt is the genuine signed
// receipt of master's database master key (a receipt that names another
// item); or other bytes written over the genuine newest copy, under its
// own name, whose metadata claims the genuine SHA-256 (a new version where
// the service keeps versions; on Azurite, where versioning is waived, the
// copy itself).
func (w *worker) forgeItem() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	host := w.backupHost() + "/INST1/"
	keys, err := w.store.list(ctx, w.prefix+host)
	if err != nil {
		return err
	}
	newestWithReceipt := func(folder, ext string) string {
		var out string
		for _, k := range keys {
			if c, ok := strings.CutSuffix(k, ext+".receipt.json"); ok && strings.Contains(k, folder) && !slices.Contains(w.planted, path.Base(c+ext)) {
				out = max(out, c+ext)
			}
		}
		return out
	}
	ext := ".pfx"
	if campaignSQLVersion(w.backend) != "" {
		ext = ".cer"
	}
	cert := newestWithReceipt("/certificate/master/TDECert/", ext)
	dmk := newestWithReceipt("/database-master-key/master/", ".key")
	if cert == "" || dmk == "" {
		return fmt.Errorf("no genuine copy of TDECert (%q) or master's key (%q) under %s", cert, dmk, host)
	}
	w.itemForgeN++
	if w.itemForgeN%3 == 0 {
		genuine, err := w.store.get(ctx, cert, "")
		if err != nil {
			return err
		}
		data := bytes.Repeat([]byte{'O'}, len(genuine))
		copy(data, "overwritten certificate ")
		w.overwritten = append(w.overwritten, path.Base(cert))
		_, err = w.store.put(ctx, cert, data, sha(genuine))
		return err
	}
	dir, base := path.Split(cert)
	m := itemCopyName.FindStringSubmatch(base)
	if m == nil {
		return fmt.Errorf("unexpected copy name %q", base)
	}
	newer := time.Now().UTC().Add(time.Hour).Format("20060102T150405Z")
	forgedBase := fmt.Sprintf("%s-%s-%s%s", m[1], newer, testutil.RandHex(len(m[3])/2), ext)
	forged := dir + forgedBase
	namesOther := w.itemForgeN%3 == 2
	var rec []byte
	if namesOther {
		rec, err = w.store.get(ctx, dmk+".receipt.json", "")
	} else {
		rec, err = w.store.get(ctx, cert+".receipt.json", "")
	}
	if err != nil {
		return err
	}
	genuine, err := w.store.get(ctx, cert, "")
	if err != nil {
		return err
	}
	data := bytes.Repeat([]byte{'F'}, len(genuine))
	copy(data, "forged certificate ")
	w.planted = append(w.planted, forgedBase)
	version, err := w.store.put(ctx, forged, data, "")
	if err != nil {
		return err
	}
	if !namesOther {
		rec = bytes.ReplaceAll(rec, []byte(base), []byte(forgedBase))
		rec = bytes.ReplaceAll(rec, []byte(strings.TrimSuffix(base, ext)), []byte(strings.TrimSuffix(forgedBase, ext)))
		rec = bytes.ReplaceAll(rec, []byte(sha(genuine)), []byte(sha(data)))
		var st rcpt.Stored
		if payload, _, _ := sign.Split(rec); json.Unmarshal(payload, &st) == nil {
			for _, d := range st.Destinations {
				if d.VersionID != "" && version != "" {
					rec = bytes.ReplaceAll(rec, []byte(d.VersionID), []byte(version))
				}
			}
		}
		if ext == ".cer" {
			// Its .pvk: other bytes too, recorded in the forged receipt.
			pvk, err := w.store.get(ctx, strings.TrimSuffix(cert, ".cer")+".pvk", "")
			if err != nil {
				return err
			}
			fpvk := bytes.Repeat([]byte{'P'}, len(pvk))
			pv, err := w.store.put(ctx, strings.TrimSuffix(forged, ".cer")+".pvk", fpvk, "")
			if err != nil {
				return err
			}
			rec = bytes.ReplaceAll(rec, []byte(sha(pvk)), []byte(sha(fpvk)))
			if st.Destinations != nil && st.Destinations[0].PrivateKey != nil && pv != "" {
				rec = bytes.ReplaceAll(rec, []byte(st.Destinations[0].PrivateKey.VersionID), []byte(pv))
			}
		}
	}
	_, err = w.store.put(ctx, forged+".receipt.json", rec, "")
	return err
}

var (
	restoreItemOnce sync.Once
	restoreItemOK   bool
)

// restoreItemAvailable reports whether the built binary restores one item
// (restore --kind certificate --database … --name …).
func restoreItemAvailable() bool {
	restoreItemOnce.Do(func() {
		dir, err := os.MkdirTemp("", "keyescrow-restorekind-")
		if err != nil {
			return
		}
		defer os.RemoveAll(dir)
		cmd := exec.Command(binary, "restore", "--kind", "certificate")
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
		out, _ := cmd.CombinedOutput()
		restoreItemOK = !strings.Contains(string(out), "not defined: -kind")
	})
	return restoreItemOK
}

// restoreForgedItem restores TDECert after a forged-item attack: it must
// write a genuine copy's bytes (and .pvk), the SHA-256 a receipt signed by
// the agent's key records for a copy of TDECert, never the forgery's.
func (w *worker) restoreForgedItem(label string) {
	t := w.t
	w.outN++
	ext := ".pfx"
	if campaignSQLVersion(w.backend) != "" {
		ext = ".cer"
	}
	out := filepath.Join(w.e.root, fmt.Sprintf("restored-%d%s", w.outN, ext))
	r := w.e.run(slices.Concat([]string{"restore", "--config", w.e.cfgPath, "--host", w.backupHost(), "--instance", "INST1",
		"--kind", "certificate", "--database", "master", "--name", "TDECert", "--out", out}, w.clean())...)
	if r.code != 0 {
		t.Errorf("%s: restore of TDECert exited %d although genuine copies are stored\n%s\n%s", label, r.code, r.stdout, r.stderr)
		return
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Errorf("%s: restore of TDECert exited 0 but %s: %v", label, out, err)
		return
	}
	var pvk []byte
	if ext == ".cer" {
		if pvk, err = os.ReadFile(strings.TrimSuffix(out, ext) + ".pvk"); err != nil {
			t.Errorf("%s: restore of TDECert exited 0 without its .pvk: %v", label, err)
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	keys, err := w.store.list(ctx, w.prefix+w.backupHost()+"/INST1/certificate/master/TDECert/")
	if err != nil {
		t.Errorf("%s: listing TDECert's copies: %v", label, err)
		return
	}
	live := w.liveItems()[rcpt.KindCertificate]
	for _, k := range keys {
		c, ok := strings.CutSuffix(k, ".receipt.json")
		if !ok {
			continue
		}
		st, err := w.storedReceipt(ctx, c)
		if err != nil || sameKey(live, *st.Item) != "" || st.File.Name != path.Base(c) {
			continue // not a genuine receipt of a TDECert copy
		}
		if sha(got) == st.File.SHA256 && int64(len(got)) == st.File.Bytes &&
			(st.File.PrivateKey == nil) == (pvk == nil) && (pvk == nil || sha(pvk) == st.File.PrivateKey.SHA256) {
			return
		}
	}
	w.tally.mu.Lock()
	w.tally.itemForgedRestored++
	w.tally.falseSuccesses++
	w.tally.mu.Unlock()
	t.Errorf("FALSE SUCCESS: %s: restore of TDECert exit 0 wrote %d bytes SHA-256 %s, which no genuine copy's receipt records", label, len(got), sha(got))
}
