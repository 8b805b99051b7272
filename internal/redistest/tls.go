package redistest

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
	"testing"
	"time"
)

// TLSFiles are the PEM files of a server certificate for 127.0.0.1 and of
// its key, the file of the certificate of the CA that signed it, which
// [StartTLS] also trusts for client certificates (the server certificate
// itself when empty), and a pool of roots that trusts the server's
// certificate, for a client's tls.Config. [WriteTLSFiles] makes a
// self-signed one; a test with a CA of its own fills one in.
type TLSFiles struct {
	CertFile, KeyFile, CAFile string
	Roots                     *x509.CertPool
}

// WriteTLSFiles makes a self-signed ECDSA P-256 certificate for 127.0.0.1,
// valid for an hour, and writes it and its key into a temporary directory
// of t. It calls t.Fatal when it fails.
func WriteTLSFiles(t testing.TB) TLSFiles {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "redistest server"},
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
	dir := t.TempDir()
	files := TLSFiles{
		CertFile: filepath.Join(dir, "server.crt"),
		KeyFile:  filepath.Join(dir, "server.key"),
		Roots:    x509.NewCertPool(),
	}
	files.CAFile = files.CertFile
	if err := os.WriteFile(files.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(files.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	files.Roots.AddCert(cert)
	return files
}

// StartTLS starts a redis-server that accepts TLS connections with the
// certificate of files on a port of its own, besides plain connections on
// its Addr, and returns it and the address of its TLS port. Clients need
// no certificate unless extra says otherwise: extra are further
// redis-server arguments, after the TLS ones, which they override (for
// instance "--tls-auth-clients", "optional"). Like [Start], it calls
// t.Fatal when it fails, and the server is closed when t ends.
func StartTLS(t testing.TB, files TLSFiles, extra ...string) (srv *Server, tlsAddr string) {
	t.Helper()
	var errs []error
	// Another process may take the TLS port before the server binds it;
	// Launch retries only its own port.
	ca := files.CAFile
	if ca == "" {
		ca = files.CertFile
	}
	for range launchAttempts {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		args := append([]string{"--tls-port", strconv.Itoa(port),
			"--tls-cert-file", files.CertFile, "--tls-key-file", files.KeyFile,
			"--tls-ca-cert-file", ca, "--tls-auth-clients", "no"}, extra...)
		srv, err := Launch(args...)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		srv.cleanupWith(t)
		return srv, net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}
	t.Fatalf("redistest: starting redis-server with TLS: %v", errors.Join(errs...))
	return nil, ""
}
