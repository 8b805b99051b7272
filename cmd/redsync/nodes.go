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
	end := 0
	for _, piece := range strings.Split(spec, ",") {
		start := end
		end = min(start+len(piece)+1, len(spec))
		s := strings.TrimSpace(piece)
		if s == "" {
			continue
		}
		// A password or a query value with a comma is cut in pieces
		// here. A piece without "@" may be one: of a password when an
		// "@" follows, of a query value when a "?" came before.
		part := !strings.Contains(s, "@") &&
			(strings.Contains(spec[end:], "@") || !strings.Contains(s, "://") && strings.Contains(spec[:start], "?"))
		o, label, err := parseNode(s, len(opts)+1, part)
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

// parseNode parses node address s, the n-th of the list, and returns its
// options and its label, s without its password (see redact). Its errors
// name the node by the label and show no part of the password: when
// something is hidden, the error is that of parsing the label instead.
// When s does not parse and may be part of a password or query value
// that held a comma, s is not shown: only its scheme, if any.
func parseNode(s string, n int, mayBePart bool) (opts *goredislib.Options, label string, err error) {
	label, hid := redact(s)
	isURL := strings.Contains(s, "://")
	if !isURL && strings.Contains(s, "@") {
		return nil, "", fmt.Errorf("node %s: a HOST:PORT node takes no USER:PASSWORD@; give it as redis://USER:PASSWORD@HOST:PORT, with a comma in the password as %%2C", label)
	}
	opts, err = nodeOptions(s)
	switch {
	case err == nil:
		return opts, label, nil
	case mayBePart:
		shown := hidden
		if isURL {
			shown = s[:strings.Index(s, "://")+3] + hidden
		}
		return nil, "", fmt.Errorf("node %d of the list (%s) is neither HOST:PORT nor a redis:// URL; it is not shown, since it may be part of a password cut at a comma (write a comma in a password as %%2C)", n, shown)
	case !hid:
		return nil, "", fmt.Errorf("node %s: %v", label, err)
	}
	if _, err := nodeOptions(label); err != nil {
		return nil, "", fmt.Errorf("node %s: %v", label, err)
	}
	// Only the hidden part keeps the URL from parsing.
	return nil, "", fmt.Errorf("node %s: the password or a hidden query value makes the URL invalid; percent-encode its %%, ?, #, /, @ and ,", label)
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

// connect opens a connection to every node at once, and asks each for
// its server's run (INFO server), so that the lock's first try, whose
// commands get 5% of the TTL each, does not also pay for dialling and the
// handshake, and so that checkServers can tell one server given twice.
// A node that fails is left for the lock to report.
func connect(nodes []node) []serverInfo {
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	infos := make([]serverInfo, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			info, err := n.client.Info(ctx, "server").Result()
			infos[i] = serverInfo{runID: infoField(info, "run_id"), err: err}
		}()
	}
	wg.Wait()
	return infos
}

// infoField returns the value of field name in the text of INFO, or "".
func infoField(info, name string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
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
