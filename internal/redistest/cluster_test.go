package redistest

import (
	"errors"
	"strings"
	"testing"
)

func TestStartCluster(t *testing.T) {
	requireRedis(t)
	servers := StartCluster(t)
	if len(servers) != len(ClusterSlots) {
		t.Fatalf("StartCluster() = %d servers, want %d", len(servers), len(ClusterSlots))
	}
	keys := KeysPerMaster(t, servers[0], "k:")
	for master, key := range keys {
		if !strings.HasPrefix(key, "k:") {
			t.Errorf("KeysPerMaster()[%d] = %q, want the prefix k:", master, key)
		}
		if got := ClusterMaster(t, servers[2], key); got != master {
			t.Errorf("ClusterMaster(%q) = %d, want %d", key, got, master)
		}
		for i, srv := range servers {
			_, err := srv.Do("SET", key, "v")
			var se ServerError
			switch {
			case i == master && err != nil:
				t.Errorf("master %d: SET %s = %v, want OK from the owner", i, key, err)
			case i != master && !(errors.As(err, &se) && se.Prefix() == "MOVED"):
				t.Errorf("master %d: SET %s = %v, want MOVED from a master that does not own it", i, key, err)
			}
		}
	}
}
