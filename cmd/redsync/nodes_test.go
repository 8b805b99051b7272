//go:build unix

package main

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// silentListener listens on a port of 127.0.0.1 where no node may connect,
// and returns the port and a function that reports whether anything did.
func silentListener(t *testing.T) (port int, connected func() bool) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	connected = func() bool {
		// A connection made earlier waits in the backlog.
		ln.(*net.TCPListener).SetDeadline(time.Now().Add(100 * time.Millisecond))
		c, err := ln.Accept()
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	return ln.Addr().(*net.TCPAddr).Port, connected
}

func TestNodesSameServer(t *testing.T) {
	port, connected := silentListener(t)
	p := fmt.Sprint(port)
	tests := []struct {
		name  string
		nodes string
		twice string // the node reported as given twice
	}{
		{"HOST:PORT and a URL", "127.0.0.1:" + p + ",redis://127.0.0.1:" + p, "redis://127.0.0.1:" + p},
		{"database 0 and none", "redis://127.0.0.1:" + p + "/0,127.0.0.1:" + p, "127.0.0.1:" + p},
		{"localhost and 127.0.0.1", "localhost:" + p + ",127.0.0.1:" + p, "127.0.0.1:" + p},
		{"a host name in capitals", "127.0.0.1:" + p + ",LOCALHOST:" + p, "LOCALHOST:" + p},
		{"IPv6 and IPv4 loopback", "127.0.0.1:" + p + ",[::1]:" + p, "[::1]:" + p},
		{"two databases of one server", "redis://127.0.0.1:" + p + "/1,127.0.0.1:9,redis://localhost:" + p + "/2", "redis://localhost:" + p + "/2"},
		{"with a password", "redis://u:S3CRET@localhost:" + p + ",127.0.0.1:" + p, "127.0.0.1:" + p},
	}
	for _, tt := range tests {
		for _, cmd := range [][]string{{"exec", "same", "--", "true"}, {"status", "same"}} {
			t.Run(tt.name+"/"+cmd[0], func(t *testing.T) {
				code, stdout, stderr := runToEnd(t, "", append([]string{cmd[0], "--nodes", tt.nodes}, cmd[1:]...)...)
				want := fmt.Sprintf("redsync: %s: node %s is given twice", cmd[0], tt.twice)
				if code != exitUsage || !strings.HasPrefix(stderr, want) || stdout != "" {
					t.Errorf("redsync --nodes %s: exit status %d, stderr %q; want %d, %q...", tt.nodes, code, stderr, exitUsage, want)
				}
				if strings.Contains(stderr, "CRET") {
					t.Errorf("stderr shows the password: %q", stderr)
				}
				if connected() {
					t.Errorf("redsync --nodes %s connected to a node before it refused the list", tt.nodes)
				}
			})
		}
	}

	t.Run("distinct servers", func(t *testing.T) {
		servers, _ := cluster(t, 2)
		nodes := fmt.Sprintf("localhost:%d,redis://127.0.0.1:%d/0", servers[0].Port(), servers[1].Port())
		code, stdout, stderr := runToEnd(t, "", "status", "--nodes", nodes, "same")
		if code != exitNotHeld || len(states(stdout)) != 2 {
			t.Errorf("status --nodes %s: exit status %d, stderr %q; want %d and 2 nodes, printed:\n%s", nodes, code, stderr, exitNotHeld, stdout)
		}
	})
}

func TestNodePasswordsRedacted(t *testing.T) {
	tests := []struct {
		name  string
		nodes string
		want  int
	}{
		{"a question mark in the password", "redis://:1234?S3CRET@127.0.0.1:1", exitUsage},
		{"a slash in the password", "redis://u:S3/CRET@127.0.0.1:1", exitUsage},
		{"a hash in the password", "redis://u:S3#CRET@127.0.0.1:1", exitUsage},
		{"a bad escape in the password", "redis://u:S3%zzCRET@127.0.0.1:1", exitUsage},
		{"a bad database", "redis://u:S3CRET@127.0.0.1:1/db", exitUsage},
		{"a bad option", "redis://u:S3CRET@127.0.0.1:1?dial_timeout=x", exitUsage},
		{"a bad host", "redis://u:S3CRET@[::1", exitUsage},
		{"a bad scheme", "http://u:S3CRET@127.0.0.1:1", exitUsage},
		{"userinfo without a scheme", "u:S3CRET@127.0.0.1:1", exitUsage},
		{"a password alone", "redis://S3CRET@127.0.0.1:1/x", exitUsage},
		{"nodes that fail", "redis://u:S3CRET@127.0.0.1:1,redis://:S3CRET@127.0.0.1:2,redis://S3CRET@127.0.0.1:3", exitUnavailable},
	}
	for _, tt := range tests {
		for _, cmd := range [][]string{{"exec", "a", "--", "true"}, {"status", "a"}} {
			t.Run(tt.name+"/"+cmd[0], func(t *testing.T) {
				code, stdout, stderr := runToEnd(t, tt.nodes, cmd...)
				if code != tt.want {
					t.Errorf("exit status = %d, want %d; stderr:\n%s", code, tt.want, stderr)
				}
				if strings.Contains(stdout+stderr, "CRET") {
					t.Errorf("redsync shows the password:\n%s%s", stdout, stderr)
				}
				if !strings.Contains(stdout+stderr, "xxxxx@") {
					t.Errorf("redsync does not name the node with its password hidden:\n%s%s", stdout, stderr)
				}
			})
		}
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, label string }{
		{"127.0.0.1:6379", "127.0.0.1:6379"},
		{"redis://h:1/2?dial_timeout=3s", "redis://h:1/2?dial_timeout=3s"},
		{"redis://u:pw@h:1", "redis://u:xxxxx@h:1"},
		{"redis://u:@h:1", "redis://u:@h:1"},
		{"redis://pw@h:1", "redis://xxxxx@h:1"},
		{"redis://u:p@ss@h:1", "redis://u:xxxxx@h:1"},
		{"u:pw@h:1", "xxxxx@h:1"},
		{"[u:pw@h]:1", "xxxxx@h]:1"},
		{"redis://h:1?password=pw&db=2", "redis://h:1?password=xxxxx&db=2"},
		{"redis://h:1?pw&db=2", "redis://h:1?xxxxx&db=2"},
		{"redis://h:1?password=", "redis://h:1?password="},
		{"rediss://u:pw@h:1?auth=pw#frag", "rediss://u:xxxxx@h:1?auth=xxxxx#xxxxx"},
		{"redis://h:1#a?password=pw", "redis://h:1#xxxxx"},
	}
	for _, tt := range tests {
		label, hid := redact(tt.in)
		if label != tt.label || hid != (label != tt.in) {
			t.Errorf("redact(%q) = %q, %t; want %q, %t", tt.in, label, hid, tt.label, tt.label != tt.in)
		}
	}
}
