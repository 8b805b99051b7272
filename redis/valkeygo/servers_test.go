package valkeygo_test

// Servers the tests need beyond plain ones: a Redis Cluster, and servers
// that speak TLS.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-redlock/redsync/internal/redistest"
)

// freePort returns a port of 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// slotRanges are the hash slots of the three masters of startCluster.
var slotRanges = [3][2]int{{0, 5460}, {5461, 10922}, {10923, 16383}}

// startCluster starts a Redis Cluster of three masters, each owning one of
// slotRanges, and waits until every node reports cluster_state:ok.
func startCluster(t *testing.T) []*redistest.Server {
	t.Helper()
	servers := make([]*redistest.Server, len(slotRanges))
	busPorts := make([]string, len(slotRanges))
	for i := range servers {
		// The bus port defaults to port+10000, which may be taken.
		busPorts[i] = strconv.Itoa(freePort(t))
		servers[i] = redistest.Start(t, "--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf", "--cluster-port", busPorts[i])
		r := slotRanges[i]
		servers[i].MustDo(t, "CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(r[0]), strconv.Itoa(r[1]))
	}
	for i, srv := range servers[1:] {
		servers[0].MustDo(t, "CLUSTER", "MEET", "127.0.0.1", strconv.Itoa(srv.Port()), busPorts[i+1])
	}
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; i < len(servers); {
		info := servers[i].MustDo(t, "CLUSTER", "INFO").Str
		if strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:3") {
			i++
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d: no cluster_state:ok after 15s; CLUSTER INFO:\n%s", i, info)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return servers
}

// namesPerMaster returns one key per master of startCluster, each owned by
// that master.
func namesPerMaster(t *testing.T, srv *redistest.Server, prefix string) []string {
	t.Helper()
	names := make([]string, len(slotRanges))
	for i, found := 0, 0; found < len(names); i++ {
		name := prefix + strconv.Itoa(i)
		slot := int(srv.MustDo(t, "CLUSTER", "KEYSLOT", name).Int)
		for m, r := range slotRanges {
			if slot >= r[0] && slot <= r[1] && names[m] == "" {
				names[m] = name
				found++
			}
		}
	}
	return names
}

// writeServerCert writes a self-signed certificate for 127.0.0.1, valid
// for an hour, and its key into dir, and returns a pool that trusts it.
func writeServerCert(t *testing.T, dir string) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "redsync adapter test"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return certFile, keyFile, roots
}

// startTLSServer starts a redis-server that also accepts TLS connections
// (without client certificates) on a port of its own, and returns that
// port's address.
func startTLSServer(t *testing.T, certFile, keyFile string) string {
	t.Helper()
	var errs []error
	// Another process may take the TLS port before the server binds it.
	for range 5 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
		_, port, _ := net.SplitHostPort(addr)
		srv, err := redistest.Launch("--tls-port", port,
			"--tls-cert-file", certFile, "--tls-key-file", keyFile,
			"--tls-ca-cert-file", certFile, "--tls-auth-clients", "no")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		t.Cleanup(func() {
			if err := srv.Close(); err != nil {
				t.Errorf("closing redis-server: %v", err)
			}
		})
		return addr
	}
	t.Fatalf("starting redis-server with TLS: %v", errors.Join(errs...))
	return ""
}
