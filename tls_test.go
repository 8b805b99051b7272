package redsync_test

// TLS: three redis-server processes that accept TLS connections, with
// certificates of a throwaway CA made by the test, locked through go-redis
// and redigo over TLS.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	redigolib "github.com/gomodule/redigo/redis"
	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/goredis"
	"github.com/go-redlock/redsync/redis/redigo"
)

// tlsFiles are the PEM files of a test CA and of the certificates it
// signed, and the same material loaded for Go clients.
type tlsFiles struct {
	caCert, serverCert, serverKey string // paths
	roots                         *x509.CertPool
	client                        tls.Certificate
}

// writeTLSFiles makes a CA and, signed by it, a server certificate for
// 127.0.0.1 and localhost and a client certificate, all ECDSA P-256 and
// valid for an hour, and writes the PEM files into a temporary directory.
func writeTLSFiles(t *testing.T) *tlsFiles {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	newKey := func() *ecdsa.PrivateKey {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatalf("ecdsa.GenerateKey() = %v", err)
		}
		return key
	}
	serial := int64(0)
	template := func(cn string) *x509.Certificate {
		serial++
		return &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now.Add(-time.Minute),
			NotAfter:     now.Add(time.Hour),
		}
	}
	writePEM := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		data := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	sign := func(tmpl, parent *x509.Certificate, key *ecdsa.PrivateKey, parentKey *ecdsa.PrivateKey) *x509.Certificate {
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
		if err != nil {
			t.Fatalf("x509.CreateCertificate(%s) = %v", tmpl.Subject.CommonName, err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatalf("x509.ParseCertificate(%s) = %v", tmpl.Subject.CommonName, err)
		}
		return cert
	}
	keyPEM := func(name string, key *ecdsa.PrivateKey) string {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatalf("x509.MarshalPKCS8PrivateKey() = %v", err)
		}
		return writePEM(name, "PRIVATE KEY", der)
	}

	caKey := newKey()
	caTmpl := template("redsync test CA")
	caTmpl.IsCA = true
	caTmpl.BasicConstraintsValid = true
	caTmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	ca := sign(caTmpl, caTmpl, caKey, caKey)

	serverKey := newKey()
	serverTmpl := template("redsync test server")
	serverTmpl.KeyUsage = x509.KeyUsageDigitalSignature
	serverTmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	serverTmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	serverTmpl.DNSNames = []string{"localhost"}
	server := sign(serverTmpl, ca, serverKey, caKey)

	clientKey := newKey()
	clientTmpl := template("redsync test client")
	clientTmpl.KeyUsage = x509.KeyUsageDigitalSignature
	clientTmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	client := sign(clientTmpl, ca, clientKey, caKey)

	files := &tlsFiles{
		caCert:     writePEM("ca.crt", "CERTIFICATE", ca.Raw),
		serverCert: writePEM("server.crt", "CERTIFICATE", server.Raw),
		serverKey:  keyPEM("server.key", serverKey),
		roots:      x509.NewCertPool(),
		client:     tls.Certificate{Certificate: [][]byte{client.Raw}, PrivateKey: clientKey, Leaf: client},
	}
	files.roots.AddCert(ca)
	return files
}

// tlsNode is a redis-server that accepts TLS connections on tlsAddr, and
// plain ones on srv.Addr() (redistest picks and probes that port itself).
type tlsNode struct {
	srv     *redistest.Server
	tlsAddr string
}

// startTLSNodes starts n servers with TLS on a second port of their own,
// client certificates optional.
func startTLSNodes(t *testing.T, files *tlsFiles, n int) []tlsNode {
	t.Helper()
	nodes := make([]tlsNode, n)
	for i := range nodes {
		nodes[i] = startTLSNode(t, files)
	}
	return nodes
}

func startTLSNode(t *testing.T, files *tlsFiles) tlsNode {
	t.Helper()
	const attempts = 5
	var errs []error
	// Another process may take the TLS port between the probe and the
	// server's bind; try a few ports.
	for range attempts {
		port, err := freeTCPPort()
		if err != nil {
			t.Fatal(err)
		}
		srv, err := redistest.Launch(
			"--tls-port", strconv.Itoa(port),
			"--tls-cert-file", files.serverCert,
			"--tls-key-file", files.serverKey,
			"--tls-ca-cert-file", files.caCert,
			"--tls-auth-clients", "optional",
		)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("log of redis-server %s:\n%s", srv.Addr(), srv.Log())
			}
			if err := srv.Close(); err != nil {
				t.Errorf("closing redis-server %s: %v", srv.Addr(), err)
			}
		})
		return tlsNode{srv: srv, tlsAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	}
	t.Fatalf("starting redis-server with TLS failed %d times: %v", attempts, errors.Join(errs...))
	return tlsNode{}
}

// freeTCPPort returns a port of 127.0.0.1 that was free a moment ago.
func freeTCPPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tlsClientConfig trusts the test CA only; with client set, it also
// presents the client certificate.
func tlsClientConfig(files *tlsFiles, client bool) *tls.Config {
	cfg := &tls.Config{RootCAs: files.roots, MinVersion: tls.VersionTLS12}
	if client {
		cfg.Certificates = []tls.Certificate{files.client}
	}
	return cfg
}

func closeGoredis(t *testing.T, client *goredislib.Client) {
	t.Cleanup(func() {
		if err := client.Close(); err != nil {
			t.Errorf("closing the go-redis client: %v", err)
		}
	})
}

func closeRedigo(t *testing.T, pool *redigolib.Pool) {
	t.Cleanup(func() {
		if err := pool.Close(); err != nil {
			t.Errorf("closing the redigo pool: %v", err)
		}
	})
}

func TestTLS(t *testing.T) {
	files := writeTLSFiles(t)
	nodes := startTLSNodes(t, files, 3)

	tests := []struct {
		name    string
		newPool func(t *testing.T, addr string) redis.Pool
	}{
		{"goredis", func(t *testing.T, addr string) redis.Pool {
			client := goredislib.NewClient(&goredislib.Options{
				Addr:      addr,
				TLSConfig: tlsClientConfig(files, false),
			})
			closeGoredis(t, client)
			return goredis.NewPool(client)
		}},
		{"goredis/ClientCertificate", func(t *testing.T, addr string) redis.Pool {
			client := goredislib.NewClient(&goredislib.Options{
				Addr:      addr,
				TLSConfig: tlsClientConfig(files, true),
			})
			closeGoredis(t, client)
			return goredis.NewPool(client)
		}},
		{"goredis/ParseURL", func(t *testing.T, addr string) redis.Pool {
			opts, err := goredislib.ParseURL("rediss://" + addr + "/0")
			if err != nil {
				t.Fatalf("ParseURL() = %v", err)
			}
			if opts.TLSConfig == nil {
				t.Fatal("ParseURL(rediss://...) left TLSConfig nil, want TLS on")
			}
			// ParseURL trusts the system's roots; this server's CA is
			// the test's own.
			opts.TLSConfig.RootCAs = files.roots
			client := goredislib.NewClient(opts)
			closeGoredis(t, client)
			return goredis.NewPool(client)
		}},
		{"redigo", func(t *testing.T, addr string) redis.Pool {
			pool := &redigolib.Pool{
				MaxIdle: 4,
				DialContext: func(ctx context.Context) (redigolib.Conn, error) {
					return redigolib.DialContext(ctx, "tcp", addr,
						redigolib.DialUseTLS(true),
						redigolib.DialTLSConfig(tlsClientConfig(files, true)))
				},
			}
			closeRedigo(t, pool)
			return redigo.NewPool(pool)
		}},
		{"redigo/DialURL", func(t *testing.T, addr string) redis.Pool {
			pool := &redigolib.Pool{
				MaxIdle: 4,
				DialContext: func(ctx context.Context) (redigolib.Conn, error) {
					return redigolib.DialURLContext(ctx, "rediss://"+addr+"/0",
						redigolib.DialTLSConfig(tlsClientConfig(files, false)))
				},
			}
			closeRedigo(t, pool)
			return redigo.NewPool(pool)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pools := make([]redis.Pool, len(nodes))
			for i, n := range nodes {
				pools[i] = tt.newPool(t, n.tlsAddr)
			}
			rs := redsync.New(pools...)
			name := "tls-lock:" + tt.name
			// Seconds per node (roomy): the first command of each
			// connection makes a TLS handshake.
			m := rs.NewMutex(name, roomy)
			if err := m.Lock(); err != nil {
				t.Fatalf("Lock() over TLS = %v, want nil", err)
			}
			for i, n := range nodes {
				if rep := n.srv.MustDo(t, "GET", name); rep.Str != m.Value() {
					t.Errorf("node %d holds %s, want the value %q", i, rep, m.Value())
				}
			}
			err := rs.NewMutex(name, roomy).TryLock()
			var taken *redsync.ErrTaken
			if !errors.As(err, &taken) {
				t.Errorf("TryLock() of a held lock over TLS = %v, want a *ErrTaken", err)
			}
			if ok, err := m.Extend(); !ok || err != nil {
				t.Errorf("Extend() over TLS = %v, %v; want true, nil", ok, err)
			}
			if ok, err := m.Unlock(); !ok || err != nil {
				t.Errorf("Unlock() over TLS = %v, %v; want true, nil", ok, err)
			}
			for i, n := range nodes {
				if keys, err := n.srv.Keys("*"); err != nil || len(keys) != 0 {
					t.Errorf("node %d holds keys %q (%v) after Unlock, want none", i, keys, err)
				}
			}
		})
	}

	// The checks above prove something only if the TLS port speaks TLS
	// and nothing else, and the clients really verify the server.
	t.Run("PlainClientRefused", func(t *testing.T) {
		client := goredislib.NewClient(&goredislib.Options{Addr: nodes[0].tlsAddr, MaxRetries: -1})
		closeGoredis(t, client)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := client.Ping(ctx).Err(); err == nil {
			t.Error("PING in plain text to the TLS port = nil error, want one")
		}
	})
	t.Run("UnknownCARefused", func(t *testing.T) {
		// go-redis retries a failed dial 5 times, 100ms apart, by
		// default: longer than the core's per-node timeout, which would
		// then hide the cause. One dial shows it.
		client := goredislib.NewClient(&goredislib.Options{
			Addr:          nodes[0].tlsAddr,
			TLSConfig:     &tls.Config{RootCAs: x509.NewCertPool(), MinVersion: tls.VersionTLS12},
			MaxRetries:    -1,
			DialerRetries: 1,
		})
		closeGoredis(t, client)
		m := redsync.New(goredis.NewPool(client)).NewMutex("tls-lock:unknown-ca", redsync.WithTries(1))
		err := m.Lock()
		var unknown x509.UnknownAuthorityError
		if !errors.Is(err, redsync.ErrFailed) || !errors.As(err, &unknown) {
			t.Errorf("Lock() with a client that does not trust the CA = %v, want ErrFailed and an x509.UnknownAuthorityError", err)
		}
		if err != nil && !strings.Contains(err.Error(), "node #0") {
			t.Errorf("Lock() error = %q, want it to name node #0", err)
		}
	})
}
