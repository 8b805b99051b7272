//go:build unix

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/goredis"
)

// node is one Redis node of the command line.
type node struct {
	label  string // the address as given, without its password
	client *goredislib.Client
}

// openNodes returns a client for each node of spec (comma-separated URLs or
// host:port addresses). cacert, when not empty, is a PEM file of the CAs
// that rediss:// nodes are checked against. The caller closes the clients.
func openNodes(spec, cacert string) ([]node, error) {
	var roots *x509.CertPool
	if cacert != "" {
		pem, err := os.ReadFile(cacert)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cacert: no PEM certificate in %s", cacert)
		}
	}
	var nodes []node
	seen := map[string]string{}
	for _, s := range strings.Split(spec, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		opts, label, err := nodeOptions(s)
		if err != nil {
			closeNodes(nodes)
			return nil, err
		}
		// The same server twice would vote twice.
		id := opts.Network + " " + opts.Addr + " " + fmt.Sprint(opts.DB)
		if first, dup := seen[id]; dup {
			closeNodes(nodes)
			return nil, fmt.Errorf("node %s is given twice (also as %s)", label, first)
		}
		seen[id] = label
		if opts.TLSConfig != nil && roots != nil {
			opts.TLSConfig.RootCAs = roots
		}
		// The lock retries on its own terms; a per-node timeout bounds
		// every command through its context.
		opts.MaxRetries = -1
		opts.DialerRetries = 1
		opts.ContextTimeoutEnabled = true
		opts.DisableIdentity = true
		opts.PoolSize = 4
		nodes = append(nodes, node{label: label, client: goredislib.NewClient(opts)})
	}
	return nodes, nil
}

// nodeOptions parses one node: a redis:// or rediss:// URL, or host:port.
// label is s without its password.
func nodeOptions(s string) (opts *goredislib.Options, label string, err error) {
	if !strings.Contains(s, "://") {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return nil, "", fmt.Errorf("node %q: want HOST:PORT or a redis:// URL: %v", s, err)
		}
		return &goredislib.Options{Addr: s}, s, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		// url's error quotes the URL, password and all.
		return nil, "", fmt.Errorf("node %q: not a valid URL", redactRaw(s))
	}
	label = u.Redacted()
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, "", fmt.Errorf("node %s: the scheme must be redis or rediss", label)
	}
	opts, err = goredislib.ParseURL(s)
	if err != nil {
		return nil, "", fmt.Errorf("node %s: %s", label, strings.ReplaceAll(err.Error(), s, label))
	}
	if u.Scheme == "rediss" && opts.TLSConfig == nil {
		opts.TLSConfig = &tls.Config{ServerName: u.Hostname()}
	}
	return opts, label, nil
}

// redactRaw hides what may be a password in a URL that did not parse.
func redactRaw(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	at := strings.LastIndex(rest, "@")
	if !ok || at < 0 {
		return s
	}
	user, _, _ := strings.Cut(rest[:at], ":")
	return scheme + "://" + user + ":xxxxx" + rest[at:]
}

// connectTimeout bounds connect.
const connectTimeout = 2 * time.Second

// connect opens a connection to every node at once (a PING), so that the
// lock's first try, whose commands get 5% of the TTL each, does not also
// pay for dialling and the handshake. Failures are left for the lock to
// report.
func connect(nodes []node) {
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() { _ = n.client.Ping(ctx).Err() })
	}
	wg.Wait()
}

// pools returns one redsync pool per node.
func pools(nodes []node) []redis.Pool {
	p := make([]redis.Pool, len(nodes))
	for i, n := range nodes {
		p[i] = goredis.NewPool(n.client)
	}
	return p
}

func closeNodes(nodes []node) {
	for _, n := range nodes {
		_ = n.client.Close()
	}
}
