package redistest

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// ClusterSlots are the hash slots of the masters of [StartCluster]: master
// i owns ClusterSlots[i][0] through ClusterSlots[i][1].
var ClusterSlots = [3][2]int{{0, 5460}, {5461, 10922}, {10923, 16383}}

// clusterTimeout is how long StartCluster waits for the cluster to form.
const clusterTimeout = 15 * time.Second

// StartCluster starts a Redis Cluster of three masters without replicas,
// master i owning ClusterSlots[i], and waits until every node reports
// cluster_state:ok and knows the other two. Like [Start], it calls t.Fatal
// when it fails, and the servers are closed when t ends. It must be called
// from the test goroutine.
func StartCluster(t testing.TB) []*Server {
	t.Helper()
	servers := make([]*Server, len(ClusterSlots))
	busPorts := make([]string, len(ClusterSlots))
	for i := range servers {
		// The cluster bus listens on port+10000 unless told otherwise,
		// which may be above 65535 or taken: give it a free port.
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		busPorts[i] = strconv.Itoa(port)
		servers[i] = Start(t, "--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf", "--cluster-port", busPorts[i])
		r := ClusterSlots[i]
		servers[i].MustDo(t, "CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(r[0]), strconv.Itoa(r[1]))
	}
	for i, srv := range servers[1:] {
		servers[0].MustDo(t, "CLUSTER", "MEET", "127.0.0.1", strconv.Itoa(srv.Port()), busPorts[i+1])
	}
	deadline := time.Now().Add(clusterTimeout)
	for i := 0; i < len(servers); {
		info := servers[i].MustDo(t, "CLUSTER", "INFO").Str
		if strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:3") {
			i++
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: cluster node %d: no cluster_state:ok after %v; CLUSTER INFO:\n%s", i, clusterTimeout, info)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return servers
}

// ClusterMaster returns the index of the master of [StartCluster] that
// owns key, as srv, any node of the cluster, computes its slot. It calls
// t.Fatal when srv does not answer.
func ClusterMaster(t testing.TB, srv *Server, key string) int {
	t.Helper()
	slot := int(srv.MustDo(t, "CLUSTER", "KEYSLOT", key).Int)
	for i, r := range ClusterSlots {
		if slot >= r[0] && slot <= r[1] {
			return i
		}
	}
	t.Fatalf("redistest: slot %d of %q is in no range of ClusterSlots", slot, key)
	return -1
}

// KeysPerMaster returns one key for each master of [StartCluster], owned
// by it: prefix followed by a number. srv is any node of the cluster.
func KeysPerMaster(t testing.TB, srv *Server, prefix string) []string {
	t.Helper()
	keys := make([]string, len(ClusterSlots))
	for i, found := 0, 0; found < len(keys); i++ {
		key := prefix + strconv.Itoa(i)
		if m := ClusterMaster(t, srv, key); keys[m] == "" {
			keys[m] = key
			found++
		}
	}
	return keys
}
