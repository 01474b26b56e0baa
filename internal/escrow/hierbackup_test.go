package escrow

import (
	"strings"
	"testing"

	"github.com/keyescrow/keyescrow/internal/exitcode"
	"github.com/keyescrow/keyescrow/internal/receipt"
	"github.com/keyescrow/keyescrow/internal/storage"
)

// TestItemQuorum: require applies to each item as to the service master
// key. With require 1 of 2, a destination that refuses every write leaves
// each item archived at the other (its failure recorded); without it, each
// item fails with the transfer's code and the run says how many.
func TestItemQuorum(t *testing.T) {
	for _, require := range []int{0, 1} {
		e, second := hierEnv(t)
		e.runner.Config.Require = require
		second.Inject("put", storage.ErrUnavailable, 1000)
		rec, err := e.runner.Backup(testContext(t))
		if len(rec.Items) == 0 {
			t.Fatalf("require %d: no items: %v", require, err)
		}
		var selected int
		for _, it := range rec.Items {
			if it.Action == receipt.ItemExcluded {
				continue
			}
			selected++
			if len(it.Destinations) != 2 || it.Destinations[0].Status != receipt.DestVerified || it.Destinations[1].Status != receipt.DestFailed {
				t.Fatalf("require %d: %s: %+v", require, it.Label(), it.Destinations)
			}
			want := receipt.ItemArchived
			if require == 0 {
				want = receipt.ItemFailed
			}
			if it.Action != want || (want == receipt.ItemFailed) != (it.Error != nil) {
				t.Fatalf("require %d: %s: %s %+v", require, it.Label(), it.Action, it.Error)
			}
			if want == receipt.ItemFailed && it.Error.Code != exitcode.Transfer {
				t.Fatalf("require %d: %s: code %d", require, it.Label(), it.Error.Code)
			}
		}
		switch {
		case selected != 3:
			t.Fatalf("require %d: %d items selected, want 3", require, selected)
		case require == 1 && (err != nil || rec.ExitCode != 0):
			t.Fatalf("require 1: %v", err)
		case require == 0 && (exitcode.Code(err) != exitcode.Transfer || rec.Error == nil || !strings.Contains(rec.Error.Message, "3 of 3 hierarchy items failed")):
			t.Fatalf("require 0: %v %+v", err, rec.Error)
		}
	}
}
