//go:build unix

package main

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

// writeCA makes a CA and a server certificate for 127.0.0.1 signed by it,
// valid for an hour, and returns the paths of their PEM files.
func writeCA(t *testing.T) (caCert, serverCert, serverKey string) {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	newKey := func() *ecdsa.PrivateKey {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return key
	}
	now := time.Now()
	caKey, key := newKey(), newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "redsync cmd test CA"},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "redsync cmd test server"},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return write("ca.crt", "CERTIFICATE", caDER), write("server.crt", "CERTIFICATE", der), write("server.key", "PRIVATE KEY", keyDER)
}

// startTLS starts a redis-server that also accepts TLS, with a password,
// and returns it and its TLS address.
func startTLS(t *testing.T, caCert, serverCert, serverKey, password string) (*redistest.Server, string) {
	t.Helper()
	var errs []error
	for range 5 { // the TLS port may be taken between the probe and the bind
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		srv, err := redistest.Launch("--tls-port", strconv.Itoa(port), "--tls-cert-file", serverCert,
			"--tls-key-file", serverKey, "--tls-ca-cert-file", caCert, "--tls-auth-clients", "no",
			"--requirepass", password)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		t.Cleanup(func() { srv.Close() })
		return srv, net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}
	t.Fatalf("starting redis-server with TLS: %v", errors.Join(errs...))
	return nil, ""
}

// TestTLSAndPassword locks over rediss:// URLs with a password, trusting
// the test's CA through --cacert.
func TestTLSAndPassword(t *testing.T) {
	caCert, serverCert, serverKey := writeCA(t)
	const password = "s3cret-pw"
	var urls []string
	var servers []*redistest.Server
	for range 3 {
		srv, addr := startTLS(t, caCert, serverCert, serverKey, password)
		servers = append(servers, srv)
		urls = append(urls, "rediss://default:"+password+"@"+addr)
	}
	nodes := strings.Join(urls, ",")

	file := filepath.Join(t.TempDir(), "env")
	r := start(t, nodes, nil, append([]string{"exec", "--cacert", caCert, "tls"}, childArgs("env", file, "0s")...)...)
	if code := r.wait(t); code != 0 {
		t.Fatalf("exec over TLS: exit status %d, want 0; stderr:\n%s", code, r.stderr.String())
	}
	if value := envOf(t, waitFile(t, file, time.Second, nil))[envValue]; value == "" {
		t.Errorf("exec over TLS: the command got no %s", envValue)
	}
	for i, s := range servers {
		if n := s.MustDo(t, "EXISTS", "tls").Int; n != 0 {
			t.Errorf("node %d: the lock key exists after exec over TLS", i)
		}
	}

	code, stdout, stderr := runToEnd(t, nodes, "status", "--cacert", caCert, "tls")
	if code != exitNotHeld || strings.Contains(stdout+stderr, password) || !strings.Contains(stdout, "rediss://default:xxxxx@127.0.0.1:") {
		t.Errorf("status over TLS: exit status %d (want %d), printed:\n%s%s", code, exitNotHeld, stdout, stderr)
	}

	// Without the CA, the servers' certificates are not trusted.
	code, _, stderr = runToEnd(t, nodes, "exec", "tls", "--", "true")
	if code != exitUnavailable || !strings.Contains(stderr, "certificate signed by unknown authority") || strings.Contains(stderr, password) {
		t.Errorf("exec over TLS without --cacert: exit status %d (want %d), stderr:\n%s", code, exitUnavailable, stderr)
	}
	// A wrong password.
	wrong := strings.ReplaceAll(nodes, password, "wrong")
	code, _, stderr = runToEnd(t, wrong, "exec", "--cacert", caCert, "tls", "--", "true")
	if code != exitUnavailable || !strings.Contains(stderr, "WRONGPASS") {
		t.Errorf("exec with a wrong password: exit status %d (want %d), stderr:\n%s", code, exitUnavailable, stderr)
	}
	if code, _, stderr := runToEnd(t, nodes, "exec", "--cacert", "/no/such/file", "tls", "--", "true"); code != exitUsage || !strings.HasPrefix(stderr, "redsync: exec: --cacert: ") {
		t.Errorf("exec --cacert of a missing file: exit status %d (want %d), stderr:\n%s", code, exitUsage, stderr)
	}
}
