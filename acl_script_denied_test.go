package redsync_test

import (
	"strings"
	"testing"

	"github.com/go-redlock/redsync"
)

// A user allowed EVAL/EVALSHA but not a command that the acquire script
// calls gets an ERR reply (Redis 7.0: "ERR The user executing the script
// can't run this command or subcommand ..."; 7.2+: "ERR ACL failure in
// script: ..."). Another try cannot cure it, so Lock must stop at once.
func TestACLScriptCommandDeniedIsPermanent(t *testing.T) {
	servers := startACLNodes(t, 3)
	for _, srv := range servers {
		srv.MustDo(t, "ACL", "SETUSER", "noset", "reset", "on", ">"+aclPassword, "~*", "+@all", "-set")
	}
	for _, d := range aclDrivers {
		t.Run(d.name, func(t *testing.T) {
			rs := aclRedsync(t, d, servers, "noset", aclPassword)
			var log acquireLog
			err := rs.NewMutex("acl-lock:noset:"+d.name, roomy, redsync.WithObserver(&log)).Lock()
			checkNodeErrors(t, "Lock() as a user without SET", err, len(servers), "the script's ACL failure", func(msg string) bool {
				return strings.Contains(msg, "can't run this command") || strings.Contains(msg, "ACL failure in script")
			})
			if e := log.last(t); e.Attempts != 1 {
				t.Errorf("Lock() as a user without SET made %d tries, want 1 (no retries)", e.Attempts)
			}
		})
	}
}
