// Package recorded is the contract stand-in for the parts of Azure Blob
// storage that Azurite ignores: blob versioning and version-level
// immutability. It is an HTTPS server on 127.0.0.1 that answers with the
// recorded Azure responses in recordings/ (status codes, header names and
// formats, error codes; each file notes its provenance) and enforces the
// same rules Azure does: Put Blob is create-only under If-None-Match "*"
// (409 BlobAlreadyExists), validates Content-MD5 (400 Md5Mismatch), gives
// every write a version id, stores the immutability policy and legal hold,
// refuses to delete or overwrite a version under a policy (409
// BlobImmutableDueToPolicy) or a legal hold (409
// BlobImmutableDueToLegalHold), and reads versions back by id. It also
// answers the two Azure Resource Manager reads the agent makes.
//
// Requests must carry a bearer token (any JWT; the fake Entra ID in
// internal/testsrv/azurite issues them); others get 403
// AuthenticationFailed. The guard test in package azstore fails when
// Azurite learns these rules, so these tests can move to it.
package recorded

import (
	"bytes"
	"crypto/md5"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/testtls"
)

//go:embed recordings/*.json
var recordings embed.FS

// Recording is one recorded Azure response.
type Recording struct {
	Provenance string            `json:"provenance"`
	Operation  string            `json:"operation"`
	Status     int               `json:"status"`
	Headers    map[string]string `json:"headers"`
	Body       string            `json:"body"`
}

// Load returns the recording in recordings/name.
func Load(name string) (Recording, error) {
	var r Recording
	b, err := recordings.ReadFile("recordings/" + name)
	if err != nil {
		return r, err
	}
	return r, json.Unmarshal(b, &r)
}

// Names lists the recordings.
func Names() []string {
	ents, _ := recordings.ReadDir("recordings")
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// Options shape the recorded account.
type Options struct {
	Account    string // default "keyescrowrec"
	Container  string // created at start
	Region     string // ARM primary location, default "northeurope"
	Secondary  string // default "westeurope"
	ResourceID string // default /subscriptions/0000…/resourceGroups/keyescrow/providers/Microsoft.Storage/storageAccounts/ACCOUNT
	// NotImmutable makes the container report no version-level immutability.
	NotImmutable bool
	// DenyARM answers ARM reads with the recorded 403 AuthorizationFailed.
	DenyARM bool
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Server is a running recorded account.
type Server struct {
	// AccountURL is https://127.0.0.1:PORT/ACCOUNT; ARMEndpoint is
	// https://127.0.0.1:PORT (the same server).
	AccountURL, ARMEndpoint string
	ResourceID              string
	TLS                     testtls.Files
	opts                    Options

	mu         sync.Mutex
	containers map[string]map[string]*blob // container → name → versions
	lastID     time.Time
	reqs       int
}

type blob struct {
	versions []*version // oldest first
	current  *version   // nil when the current version was deleted
}

type version struct {
	id          string
	data        []byte
	md5         []byte
	contentType string
	meta        map[string]string
	modified    time.Time
	until       time.Time
	mode        string // "locked", "unlocked", "" for none
	legalHold   bool
	deleted     bool
}

// Start serves the recorded account until the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if o.Account == "" {
		o.Account = "keyescrowrec"
	}
	if o.Region == "" {
		o.Region = "northeurope"
	}
	if o.Secondary == "" {
		o.Secondary = "westeurope"
	}
	if o.ResourceID == "" {
		o.ResourceID = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/keyescrow/providers/Microsoft.Storage/storageAccounts/" + o.Account
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	files, err := testtls.Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{opts: o, TLS: files, ResourceID: o.ResourceID, containers: map[string]map[string]*blob{}}
	if o.Container != "" {
		s.containers[o.Container] = map[string]*blob{}
	}
	hs := testtls.Serve(t, files, http.HandlerFunc(s.serve))
	s.ARMEndpoint = hs.URL
	s.AccountURL = hs.URL + "/" + o.Account
	return s
}

// Requests counts the requests served.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reqs
}

// AddContainer creates a container.
func (s *Server) AddContainer(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.containers[name] == nil {
		s.containers[name] = map[string]*blob{}
	}
}

// Stored describes the current version of a blob.
type Stored struct {
	VersionID string
	Data      []byte
	Mode      string
	Until     time.Time
	LegalHold bool
}

// Current returns the current version of container/name.
func (s *Server) Current(container, name string) (Stored, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.containers[container][name]
	if b == nil || b.current == nil {
		return Stored{}, false
	}
	v := b.current
	return Stored{VersionID: v.id, Data: bytes.Clone(v.data), Mode: v.mode, Until: v.until, LegalHold: v.legalHold}, true
}

// Corrupt flips a byte of a stored version behind the service's back (as
// a storage fault would), keeping its recorded Content-MD5.
func (s *Server) Corrupt(container, name, versionID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.containers[container][name]
	if b == nil {
		return false
	}
	for _, v := range b.versions {
		if (versionID == "" && v == b.current) || v.id == versionID {
			if len(v.data) > 0 {
				v.data[len(v.data)/2] ^= 0xff
				return true
			}
		}
	}
	return false
}

// reply writes recording name with vars filled in.
func (s *Server) reply(w http.ResponseWriter, r *http.Request, name string, vars map[string]string, extra http.Header) {
	rec, err := Load(name)
	if err != nil {
		http.Error(w, "recording "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	now := s.opts.Now().UTC()
	base := map[string]string{"date": now.Format(http.TimeFormat), "time": now.Format("2006-01-02T15:04:05.0000000Z"),
		"request_id": fmt.Sprintf("%08x-701e-0042-%04x-8a1d9c000000", now.UnixNano()&0xffffffff, s.reqs&0xffff),
		"account":    s.opts.Account, "region": s.opts.Region, "secondary_region": s.opts.Secondary, "resource_id": s.opts.ResourceID,
		"principal": "5b3c6f5e-2c2a-4b7e-9d3a-0f6c1e0b9a11"}
	for k, v := range vars {
		base[k] = v
	}
	fill := func(t string) string {
		for k, v := range base {
			t = strings.ReplaceAll(t, "{{"+k+"}}", v)
		}
		return t
	}
	h := w.Header()
	for k, v := range rec.Headers {
		if v = fill(v); v != "" && !strings.Contains(v, "{{") {
			h.Set(k, v)
		}
	}
	for k, vs := range extra {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	if id := r.Header.Get("x-ms-client-request-id"); id != "" {
		h.Set("x-ms-client-request-id", id)
	}
	body := fill(rec.Body)
	if rec.Body == "{{blob_bytes}}" {
		body = vars["blob_bytes"]
	}
	if r.Method == http.MethodHead {
		body = ""
	}
	if h.Get("Content-Length") == "" || r.Method != http.MethodHead {
		h.Set("Content-Length", fmt.Sprint(len(body)))
	}
	if r.Method == http.MethodHead && vars["content_length"] != "" {
		h.Set("Content-Length", vars["content_length"])
	}
	w.WriteHeader(rec.Status)
	_, _ = io.WriteString(w, body)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs++
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "Bearer ") || strings.Count(auth, ".") != 2 {
		s.reply(w, r, "authentication-403-AuthenticationFailed.json", nil, nil)
		return
	}
	if strings.HasPrefix(r.URL.Path, "/subscriptions/") {
		s.serveARM(w, r)
		return
	}
	parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 3)
	if len(parts) < 2 || parts[0] != s.opts.Account {
		s.reply(w, r, "container-404-ContainerNotFound.json", nil, nil)
		return
	}
	q := r.URL.Query()
	if q.Get("restype") == "account" && q.Get("comp") == "properties" {
		s.reply(w, r, "get-account-information-200.json", nil, nil)
		return
	}
	c := s.containers[parts[1]]
	if c == nil {
		s.reply(w, r, "container-404-ContainerNotFound.json", nil, nil)
		return
	}
	if len(parts) == 2 {
		switch {
		case q.Get("restype") == "container" && q.Get("comp") == "list":
			s.list(w, r, c)
		case q.Get("restype") == "container" && r.Method == http.MethodGet || r.Method == http.MethodHead:
			s.reply(w, r, "get-container-properties-200.json", map[string]string{"vlw": fmt.Sprint(!s.opts.NotImmutable), "last_modified": s.opts.Now().UTC().Format(http.TimeFormat)}, nil)
		default:
			http.Error(w, "not recorded: "+r.Method+" "+r.URL.RawQuery, http.StatusNotImplemented)
		}
		return
	}
	name := parts[2]
	switch r.Method {
	case http.MethodPut:
		if q.Get("comp") != "" {
			http.Error(w, "not recorded: Put Blob only (no Put Block / Put Block List / comp="+q.Get("comp")+")", http.StatusNotImplemented)
			return
		}
		s.put(w, r, c, name)
	case http.MethodGet, http.MethodHead:
		s.get(w, r, c, name, q.Get("versionid"))
	case http.MethodDelete:
		s.del(w, r, c, name, q.Get("versionid"))
	default:
		http.Error(w, "not recorded", http.StatusNotImplemented)
	}
}

func (s *Server) newVersionID() string {
	now := s.opts.Now().UTC()
	if !now.After(s.lastID) {
		now = s.lastID.Add(100 * time.Nanosecond)
	}
	s.lastID = now
	return now.Format("2006-01-02T15:04:05.0000000Z")
}

func (s *Server) put(w http.ResponseWriter, r *http.Request, c map[string]*blob, name string) {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if r.Header.Get("x-ms-blob-type") != "BlockBlob" {
		http.Error(w, "not recorded: x-ms-blob-type "+r.Header.Get("x-ms-blob-type"), http.StatusNotImplemented)
		return
	}
	sum := md5.Sum(data)
	if m := r.Header.Get("Content-MD5"); m != "" && m != base64.StdEncoding.EncodeToString(sum[:]) {
		s.reply(w, r, "put-blob-400-Md5Mismatch.json", nil, nil)
		return
	}
	b := c[name]
	if b != nil && b.current != nil {
		if r.Header.Get("If-None-Match") == "*" {
			s.reply(w, r, "put-blob-409-BlobAlreadyExists.json", nil, nil)
			return
		}
		if b.current.legalHold || b.current.until.After(s.opts.Now()) {
			s.reply(w, r, "put-blob-409-BlobImmutableDueToPolicy.json", nil, nil)
			return
		}
	}
	v := &version{id: s.newVersionID(), data: data, md5: sum[:], contentType: r.Header.Get("x-ms-blob-content-type"), meta: map[string]string{}, modified: s.opts.Now().UTC().Truncate(time.Second)}
	if stored := r.Header.Get("x-ms-blob-content-md5"); stored != "" {
		if m, err := base64.StdEncoding.DecodeString(stored); err == nil {
			v.md5 = m
		}
	}
	for k, vs := range r.Header {
		if lk := strings.ToLower(k); strings.HasPrefix(lk, "x-ms-meta-") {
			v.meta[strings.TrimPrefix(lk, "x-ms-meta-")] = vs[0]
		}
	}
	if u := r.Header.Get("x-ms-immutability-policy-until-date"); u != "" {
		until, err := time.Parse(http.TimeFormat, u)
		mode := strings.ToLower(r.Header.Get("x-ms-immutability-policy-mode"))
		if err != nil || (mode != "locked" && mode != "unlocked") {
			http.Error(w, "InvalidHeaderValue", http.StatusBadRequest)
			return
		}
		if s.opts.NotImmutable {
			http.Error(w, "not recorded: a policy on a container without version-level immutability", http.StatusNotImplemented)
			return
		}
		v.until, v.mode = until, mode
	}
	v.legalHold = strings.EqualFold(r.Header.Get("x-ms-legal-hold"), "true")
	if b == nil {
		b = &blob{}
		c[name] = b
	}
	b.versions = append(b.versions, v)
	b.current = v
	s.reply(w, r, "put-blob-201.json", map[string]string{"etag": etag(v), "last_modified": v.modified.Format(http.TimeFormat),
		"content_md5": base64.StdEncoding.EncodeToString(sum[:]), "version_id": v.id}, nil)
}

func etag(v *version) string {
	return fmt.Sprintf("0x8DD%X", v.modified.UnixNano()&0xfffffffffff)
}

func (s *Server) find(c map[string]*blob, name, versionID string) *version {
	b := c[name]
	if b == nil {
		return nil
	}
	if versionID == "" {
		return b.current
	}
	for _, v := range b.versions {
		if v.id == versionID && !v.deleted {
			return v
		}
	}
	return nil
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, c map[string]*blob, name, versionID string) {
	v := s.find(c, name, versionID)
	if v == nil {
		s.reply(w, r, "blob-404-BlobNotFound.json", nil, nil)
		return
	}
	vars := map[string]string{"content_length": fmt.Sprint(len(v.data)), "content_type": v.contentType, "content_md5": base64.StdEncoding.EncodeToString(v.md5),
		"etag": etag(v), "last_modified": v.modified.Format(http.TimeFormat), "version_id": v.id,
		"is_current": fmt.Sprint(c[name].current == v), "legal_hold": fmt.Sprint(v.legalHold),
		"policy_until": "", "policy_mode": "", "blob_bytes": string(v.data)}
	if v.mode != "" {
		vars["policy_until"], vars["policy_mode"] = v.until.UTC().Format(http.TimeFormat), v.mode
	}
	extra := http.Header{}
	for k, val := range v.meta {
		extra.Set("x-ms-meta-"+k, val)
	}
	name2 := "get-blob-200.json"
	if r.Method == http.MethodHead {
		name2 = "get-blob-properties-200.json"
	}
	s.reply(w, r, name2, vars, extra)
}

func (s *Server) del(w http.ResponseWriter, r *http.Request, c map[string]*blob, name, versionID string) {
	v := s.find(c, name, versionID)
	if v == nil {
		s.reply(w, r, "blob-404-BlobNotFound.json", nil, nil)
		return
	}
	switch {
	case v.legalHold:
		s.reply(w, r, "delete-blob-409-BlobImmutableDueToLegalHold.json", nil, nil)
		return
	case v.mode != "" && v.until.After(s.opts.Now()):
		s.reply(w, r, "delete-blob-409-BlobImmutableDueToPolicy.json", nil, nil)
		return
	}
	b := c[name]
	if versionID == "" {
		// With versioning, deleting the base blob makes the current version
		// a previous version; its bytes stay readable by id.
		b.current = nil
	} else {
		v.deleted = true
		if b.current == v {
			b.current = nil
		}
	}
	s.reply(w, r, "delete-blob-202.json", nil, nil)
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, c map[string]*blob) {
	q := r.URL.Query()
	prefix := q.Get("prefix")
	withVersions := strings.Contains(q.Get("include"), "versions")
	var names []string
	for n := range c {
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var x bytes.Buffer
	fmt.Fprintf(&x, `<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="%s/" ContainerName="%s"><Prefix>%s</Prefix><Blobs>`, s.AccountURL, "", xmlEsc(prefix))
	for _, n := range names {
		b := c[n]
		for _, v := range b.versions {
			if v.deleted || (!withVersions && v != b.current) {
				continue
			}
			fmt.Fprintf(&x, "<Blob><Name>%s</Name>", xmlEsc(n))
			if withVersions {
				fmt.Fprintf(&x, "<VersionId>%s</VersionId>", v.id)
				if v == b.current {
					x.WriteString("<IsCurrentVersion>true</IsCurrentVersion>")
				}
			}
			fmt.Fprintf(&x, "<Properties><Creation-Time>%s</Creation-Time><Last-Modified>%s</Last-Modified><Etag>%s</Etag><Content-Length>%d</Content-Length><Content-Type>%s</Content-Type><Content-MD5>%s</Content-MD5><BlobType>BlockBlob</BlobType>",
				v.modified.Format(http.TimeFormat), v.modified.Format(http.TimeFormat), etag(v), len(v.data), xmlEsc(v.contentType), base64.StdEncoding.EncodeToString(v.md5))
			if v.mode != "" {
				fmt.Fprintf(&x, "<ImmutabilityPolicyUntilDate>%s</ImmutabilityPolicyUntilDate><ImmutabilityPolicyMode>%s</ImmutabilityPolicyMode>", v.until.UTC().Format(http.TimeFormat), v.mode)
			}
			fmt.Fprintf(&x, "<LegalHold>%v</LegalHold></Properties><Metadata>", v.legalHold)
			for k, val := range v.meta {
				fmt.Fprintf(&x, "<%s>%s</%s>", k, xmlEsc(val), k)
			}
			x.WriteString("</Metadata></Blob>")
		}
	}
	x.WriteString("</Blobs><NextMarker /></EnumerationResults>")
	s.reply(w, r, "list-blobs-200.json", map[string]string{"list_xml": x.String()}, nil)
}

func xmlEsc(s string) string {
	var b bytes.Buffer
	for _, r := range s {
		switch r {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		case '"':
			b.WriteString("&quot;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func (s *Server) serveARM(w http.ResponseWriter, r *http.Request) {
	if s.opts.DenyARM {
		s.reply(w, r, "arm-403-AuthorizationFailed.json", nil, nil)
		return
	}
	p := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case strings.EqualFold(p, s.opts.ResourceID):
		s.reply(w, r, "arm-storage-account-200.json", nil, nil)
	case strings.EqualFold(p, s.opts.ResourceID+"/blobServices/default"):
		s.reply(w, r, "arm-blob-service-200.json", nil, nil)
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"error":{"code":"ResourceNotFound","message":"The Resource was not found."}}`)
	}
}
