// Package storagetest is the conformance suite every storage.Backend (S3,
// Azure Blob, folder, in-memory fake) passes: create-only writes, read
// after write, the service's own checksum, versions, retention that holds,
// ordered streaming listings, and detection of corrupted copies.
//
// A backend's test calls Run with a Harness. Cases that do not apply to a
// backend's Capabilities are not run (they are logged, not skipped); where
// possible the opposite guarantee is checked instead.
package storagetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/keyescrow/keyescrow/internal/storage"
)

// Harness tells Run how to get a destination and how to reach behind its
// back where the backend or test server allows it.
type Harness struct {
	// New returns a fresh, empty destination.
	New func(t *testing.T) storage.Backend
	// Delete removes a version (versionID "" adds a delete marker where the
	// backend versions); nil skips the cases that need it.
	Delete func(ctx context.Context, t *testing.T, b storage.Backend, key, versionID string) error
	// Corrupt changes the stored bytes of a version behind the backend's
	// back; nil skips the cases that need it.
	Corrupt func(t *testing.T, b storage.Backend, key, versionID string)
	// Retention is a retention the backend accepts (Mode from its
	// Capabilities); the suite sets Until relative to now. nil when the
	// backend has no retention.
	Retention *storage.Retention
	// NoDeleteMarkers: deleting without a version id leaves no delete
	// marker in listings (Azure Blob: the current version just becomes a
	// previous one).
	NoDeleteMarkers bool
	// ServerBugs names cases the server under test is known to get wrong
	// (case name → what it does and where it is tracked). They are not
	// run; the log says so. A name that matches no case fails the run.
	ServerBugs map[string]string
}

// CaseDeleteMarker is the name of the case that deletes without a version
// id (for Harness.ServerBugs).
const CaseDeleteMarker = caseDeleteMarker

const caseDeleteMarker = "after a delete marker the old version stays readable by its id and the key can be written again"

// testCase is one conformance case; applies says whether it fits the
// backend and, if not, why.
type testCase struct {
	name    string
	applies func(h Harness, c storage.Capabilities) (bool, string)
	run     func(t *testing.T, h Harness, b storage.Backend)
}

// Run runs every applicable case, each on a fresh destination from h.New.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.New == nil {
		t.Fatal("storagetest: Harness.New is nil")
	}
	caps := h.New(t).Capabilities()
	for name := range h.ServerBugs {
		if !slices.ContainsFunc(cases(), func(tc testCase) bool { return tc.name == name }) {
			t.Errorf("storagetest: Harness.ServerBugs names no case: %q", name)
		}
	}
	for _, tc := range cases() {
		if why, ok := h.ServerBugs[tc.name]; ok {
			t.Logf("not run, known server bug: %q: %s", tc.name, why)
			continue
		}
		if tc.applies != nil {
			if ok, why := tc.applies(h, caps); !ok {
				t.Logf("not applicable: %q: %s", tc.name, why)
				continue
			}
		}
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, h, h.New(t))
		})
	}
}

// cases lists the suite; the order does not matter.
func cases() []testCase {
	return slices.Concat(basicCases(), versionCases(), listCases(), safetyCases())
}

// testTimeout bounds every case so a hung backend fails instead of hanging.
const testTimeout = 2 * time.Minute
