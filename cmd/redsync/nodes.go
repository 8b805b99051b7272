//go:build unix

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
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
// that rediss:// nodes are checked against. Two nodes that reach the same
// server are refused (see sameServer); nothing is sent to any node. The
// caller closes the clients.
func openNodes(spec, cacert string) ([]node, error) {
	roots, err := readRoots(cacert)
	if err != nil {
		return nil, err
	}
	var (
		labels []string
		opts   []*goredislib.Options
	)
	for _, s := range strings.Split(spec, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		o, label, err := parseNode(s)
		if err != nil {
			return nil, err
		}
		labels, opts = append(labels, label), append(opts, o)
	}
	if err := sameServer(labels, opts); err != nil {
		return nil, err
	}
	nodes := make([]node, len(opts))
	for i, o := range opts {
		if o.TLSConfig != nil && roots != nil {
			o.TLSConfig.RootCAs = roots
		}
		// The lock retries on its own terms; a per-node timeout bounds
		// every command through its context.
		o.MaxRetries = -1
		o.DialerRetries = 1
		o.ContextTimeoutEnabled = true
		o.DisableIdentity = true
		o.PoolSize = 4
		nodes[i] = node{label: labels[i], client: goredislib.NewClient(o)}
	}
	return nodes, nil
}

// readRoots reads the CA certificates of --cacert; nil when not given.
func readRoots(cacert string) (*x509.CertPool, error) {
	if cacert == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(cacert)
	if err != nil {
		return nil, fmt.Errorf("--cacert: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--cacert: no PEM certificate in %s", cacert)
	}
	return roots, nil
}

// parseNode parses node address s and returns its options and its label,
// s without its password (see redact). Its errors name the node by the
// label and show no part of the password: when s has one, the error is
// that of parsing the label instead.
func parseNode(s string) (opts *goredislib.Options, label string, err error) {
	label, secret := redact(s)
	opts, err = nodeOptions(s)
	switch {
	case err == nil:
		return opts, label, nil
	case secret == "":
		return nil, "", fmt.Errorf("node %s: %v", label, err)
	}
	if _, err := nodeOptions(label); err != nil {
		return nil, "", fmt.Errorf("node %s: %v", label, err)
	}
	// Only the password keeps the URL from parsing.
	return nil, "", fmt.Errorf("node %s: the password makes the URL invalid; percent-encode its %%, ?, #, / and @", label)
}

// nodeOptions parses one node: a redis:// or rediss:// URL, or host:port.
// Its errors may quote s.
func nodeOptions(s string) (*goredislib.Options, error) {
	if !strings.Contains(s, "://") {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return nil, fmt.Errorf("want HOST:PORT or a redis:// URL: %v", err)
		}
		return &goredislib.Options{Addr: s}, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL
		}
		return nil, fmt.Errorf("not a valid URL: %v", err)
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, errors.New("the scheme must be redis or rediss")
	}
	opts, err := goredislib.ParseURL(s)
	if err != nil {
		return nil, errors.New(strings.TrimPrefix(err.Error(), "redis: "))
	}
	if u.Scheme == "rediss" && opts.TLSConfig == nil {
		opts.TLSConfig = &tls.Config{ServerName: u.Hostname()}
	}
	return opts, nil
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
