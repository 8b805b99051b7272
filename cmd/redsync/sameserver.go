//go:build unix

package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	goredislib "github.com/redis/go-redis/v9"
)

// resolveTimeout bounds the look-up of the nodes' host names.
const resolveTimeout = 5 * time.Second

// sameServer returns an error naming the first node that reaches the same
// server as an earlier one: such a server would vote twice toward the
// quorum. Nodes are told apart by the server they reach, not by spelling:
// a host name counts as the addresses it resolves to now, all addresses of
// this host (loopback, unspecified, its interfaces) count as one, and the
// database does not count, since two databases of one server fail
// together. A host name that does not resolve counts as itself. Different
// addresses of one server elsewhere (a second interface, a proxy, NAT)
// cannot be told apart.
func sameServer(labels []string, opts []*goredislib.Options) error {
	ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
	defer cancel()
	local := localAddrs()
	servers := make([][]string, len(opts))
	var wg sync.WaitGroup
	for i, o := range opts {
		wg.Go(func() { servers[i] = serverNames(ctx, o.Addr, local) })
	}
	wg.Wait()
	first := map[string]int{}
	for i, names := range servers {
		for _, name := range names {
			if j, dup := first[name]; dup {
				return fmt.Errorf("node %s is given twice (also as %s): both reach %s", labels[i], labels[j], name)
			}
		}
		for _, name := range names {
			first[name] = i
		}
	}
	return nil
}

// serverNames returns the names of the server at addr (HOST:PORT): one for
// each address of the host, or the host name itself when it does not
// resolve.
func serverNames(ctx context.Context, addr string, local map[netip.Addr]bool) []string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return []string{addr}
	}
	if n, err := net.DefaultResolver.LookupPort(ctx, "tcp", port); err == nil {
		port = fmt.Sprint(n)
	}
	ips, err := hostAddrs(ctx, host)
	if err != nil {
		return []string{net.JoinHostPort(strings.TrimSuffix(strings.ToLower(host), "."), port)}
	}
	var names []string
	for _, ip := range ips {
		if ip = ip.Unmap(); local[ip] || ip.IsLoopback() || ip.IsUnspecified() {
			names = append(names, "port "+port+" of this host")
		} else {
			names = append(names, net.JoinHostPort(ip.String(), port))
		}
	}
	return names
}

// hostAddrs returns the addresses of host: itself when it is one, this
// host's when it is empty (as the dialer takes it).
func hostAddrs(ctx context.Context, host string) ([]netip.Addr, error) {
	if host == "" {
		return []netip.Addr{netip.IPv6Unspecified()}, nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip}, nil
	}
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// localAddrs returns the addresses of this host's interfaces.
func localAddrs() map[netip.Addr]bool {
	local := map[netip.Addr]bool{}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				local[ip.Unmap()] = true
			}
		}
	}
	return local
}
