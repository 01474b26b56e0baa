package faultproxy

import (
	"slices"
	"testing"
)

// take counts only the requests a fault's Op, Paths and After select.
func TestTakeCountsOnlyTheSelectedRequests(t *testing.T) {
	type req struct {
		op          Op
		path, query string
	}
	item := req{OpGet, "/b/sqlkeys/h/I/certificate/master/TDECert/x.pfx", ""}
	smk := req{OpGet, "/b/sqlkeys/h/I/service-master-key/x.key", ""}
	list := req{OpList, "/b", "list-type=2&prefix=sqlkeys%2Fh%2FI%2Fcertificate%2Fmaster%2FTDECert%2F"}
	put := req{OpPut, "/b/sqlkeys/h/I/certificate/master/TDECert/y.pfx", ""}
	for _, c := range []struct {
		name  string
		fault Fault
		reqs  []req
		fired []int // indexes of reqs the fault fires on
	}{
		{"op and nth", Fault{Kind: Drop, Op: OpGet, Nth: 2}, []req{smk, list, item, item}, []int{2}},
		{"paths", Fault{Kind: Drop, Op: OpGet, Nth: 1, Paths: []string{"/certificate/"}}, []req{smk, smk, item, item}, []int{2}},
		{"a listing's prefix is in its query", Fault{Kind: Drop, Op: OpList, Nth: 1, Paths: []string{"/certificate/"}}, []req{list}, []int{0}},
		{"times", Fault{Kind: Drop, Op: OpGet, Nth: 1, Times: 2, Paths: []string{"/certificate/"}}, []req{item, smk, item, item}, []int{0, 2}},
		{"after", Fault{Kind: Drop, Op: OpGet, Nth: 1, Paths: []string{"/certificate/"}, After: OpPut}, []req{item, item, put, smk, item, item}, []int{4}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := &HTTP{}
			f := c.fault
			p.Arm(&f)
			var fired []int
			for i, r := range c.reqs {
				if got, _ := p.take(r.op, r.path, r.query); got != nil {
					fired = append(fired, i)
				}
			}
			if !slices.Equal(fired, c.fired) {
				t.Fatalf("fired on %v, want %v", fired, c.fired)
			}
			if p.Fired() != len(c.fired) {
				t.Fatalf("Fired() = %d, want %d", p.Fired(), len(c.fired))
			}
		})
	}
}
