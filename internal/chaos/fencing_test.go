package chaos

import (
	"reflect"
	"testing"
)

func TestCheckFencing(t *testing.T) {
	// g is a grant whose TryLock ran from called to acquired, valid until
	// validEnd, with a guarded write from wCalled to wReturned.
	g := func(worker int, token uint64, called, acquired, validEnd int64, accepted bool, wCalled, wReturned int64) Grant {
		w := &FenceWrite{Called: wCalled, Returned: wReturned, Accepted: accepted}
		return Grant{Worker: worker, Token: token, Called: called, Acquired: acquired, ValidEnd: validEnd, Fence: w}
	}
	tests := []struct {
		name   string
		grants []Grant
		want   FenceResult // Examples are not compared
	}{
		{"none", nil, FenceResult{}},
		{"successive holders", []Grant{
			g(0, 1, 0, 1, 100, true, 2, 3),
			g(1, 2, 10, 11, 100, true, 12, 13),
			g(2, 3, 20, 21, 100, true, 22, 23),
		}, FenceResult{Grants: 3, Writes: 3, Accepted: 3}},
		{"a repeated token", []Grant{
			g(0, 1, 0, 1, 100, true, 2, 3),
			g(1, 2, 10, 11, 100, true, 12, 13),
			g(2, 2, 20, 21, 100, true, 22, 23),
		}, FenceResult{Grants: 3, NotIncreasing: 1, Writes: 3, Accepted: 3}},
		{"below an earlier holder, not the last", []Grant{
			g(0, 5, 0, 1, 100, true, 2, 3),
			g(1, 6, 10, 11, 100, true, 12, 13),
			g(2, 4, 20, 21, 100, true, 22, 23),
		}, FenceResult{Grants: 3, NotIncreasing: 1, Writes: 3, Accepted: 3, Stale: 1, StaleAccepted: 1}},
		{"overlapping tries are not ordered", []Grant{
			g(0, 2, 0, 10, 100, true, 11, 12),
			g(1, 1, 5, 6, 100, true, 7, 8),
		}, FenceResult{Grants: 2, Writes: 2, Accepted: 2}},
		{"a paused holder's write refused", []Grant{
			g(0, 1, 0, 1, 10, false, 50, 51),
			g(1, 2, 20, 21, 100, true, 22, 23),
		}, FenceResult{Grants: 2, Writes: 2, Accepted: 1, Rejected: 1, Stale: 1, Late: 1, LateRejected: 1}},
		{"a paused holder's write accepted", []Grant{
			g(0, 1, 0, 1, 10, true, 50, 51),
			g(1, 2, 20, 21, 100, true, 22, 23),
		}, FenceResult{Grants: 2, Writes: 2, Accepted: 2, Stale: 1, StaleAccepted: 1, Late: 1}},
		{"a late write with no newer one", []Grant{
			g(0, 1, 0, 1, 10, true, 50, 51),
		}, FenceResult{Grants: 1, Writes: 1, Accepted: 1, Late: 1}},
		{"concurrent writes are not stale", []Grant{
			g(0, 1, 0, 1, 10, false, 50, 60),
			g(1, 2, 20, 21, 100, true, 55, 58),
		}, FenceResult{Grants: 2, Writes: 2, Accepted: 1, Rejected: 1, Late: 1, LateRejected: 1}},
		{"no token, no write", []Grant{
			{Worker: 0, Called: 0, Acquired: 1},
			{Worker: 1, Token: 1, Called: 2, Acquired: 3, ValidEnd: 10},
		}, FenceResult{Grants: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := CheckFencing(tt.grants)
			got.Examples = nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("CheckFencing() = %+v\nwant %+v", got, tt.want)
			}
		})
	}
}
