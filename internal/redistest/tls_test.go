package redistest

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"testing"
	"time"
)

func TestStartTLS(t *testing.T) {
	requireRedis(t)
	files := WriteTLSFiles(t)
	srv, addr := StartTLS(t, files, "--requirepass", "secret")
	if addr == srv.Addr() {
		t.Fatalf("StartTLS() TLS address %s, want another port than the plain one", addr)
	}
	if rep := srv.MustDo(t, "PING"); rep.Str != "PONG" {
		t.Errorf("PING on the plain port = %s, want PONG", rep)
	}

	ping := func(config *tls.Config) (string, error) {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: DoTimeout}, "tcp", addr, config)
		if err != nil {
			return "", err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(DoTimeout))
		if _, err := conn.Write([]byte("*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n*1\r\n$4\r\nPING\r\n")); err != nil {
			return "", err
		}
		r := bufio.NewReader(conn)
		if _, err := r.ReadString('\n'); err != nil {
			return "", err
		}
		return r.ReadString('\n')
	}
	trusting := &tls.Config{RootCAs: files.Roots, MinVersion: tls.VersionTLS12}
	if got, err := ping(trusting); got != "+PONG\r\n" || err != nil {
		t.Errorf("AUTH and PING over TLS = %q, %v; want +PONG", got, err)
	}
	_, err := ping(&tls.Config{MinVersion: tls.VersionTLS12})
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("PING over TLS without the roots = %v, want an x509.UnknownAuthorityError", err)
	}

	// extra overrides the TLS arguments: with client certificates
	// required, a client without one is turned away.
	_, strict := StartTLS(t, files, "--tls-auth-clients", "yes")
	addr = strict
	if got, err := ping(trusting); err == nil {
		t.Errorf("PING over TLS without a client certificate, --tls-auth-clients yes = %q, nil; want an error", got)
	}
}
