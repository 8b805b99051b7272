//go:build unix

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
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
		wg.Add(1)
		go func() {
			defer wg.Done()
			servers[i] = serverNames(ctx, o.Addr, local)
		}()
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
		if ip = zoneByName(ip.Unmap()); isLocal(ip, local) {
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

// localAddrs returns the addresses of this host's interfaces; link-local
// ones both with and without their zone (the interface's name).
func localAddrs() map[netip.Addr]bool {
	local := map[netip.Addr]bool{}
	ifaces, _ := net.Interfaces()
	for _, ifc := range ifaces {
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(n.IP)
			if !ok {
				continue
			}
			ip = ip.Unmap()
			local[ip] = true
			if ip.IsLinkLocalUnicast() {
				local[ip.WithZone(ifc.Name)] = true
			}
		}
	}
	return local
}

// zoneByName returns ip with its zone, when it is an interface's index,
// replaced by the interface's name: both spell one link.
func zoneByName(ip netip.Addr) netip.Addr {
	if index, err := strconv.Atoi(ip.Zone()); err == nil {
		if ifc, err := net.InterfaceByIndex(index); err == nil {
			return ip.WithZone(ifc.Name)
		}
	}
	return ip
}

// isLocal reports whether ip is an address of this host. An address with
// a zone (fe80::1%eth0) is this host's when it is the address of the
// interface that the zone names.
func isLocal(ip netip.Addr, local map[netip.Addr]bool) bool {
	return local[ip] || ip.IsLoopback() || ip.IsUnspecified()
}

// serverInfo is what connect learnt about the server of a node.
type serverInfo struct {
	runID string // INFO's run_id, the same for all ports of one server run; "" when unknown
	err   error  // why INFO failed, if it did
}

// checkServers returns an error naming the first node whose server has
// the run_id of an earlier node's: one server reached through addresses
// that sameServer cannot tell apart, such as its port and its tls-port.
// It warns on stderr of each node that answered INFO with an error (an
// ACL user without the permission) or without a run_id: such a node is
// not checked. Nodes that did not answer, or refused the user, are left
// for the lock to report.
func checkServers(nodes []node, infos []serverInfo, stderr io.Writer) error {
	first := map[string]int{}
	for i, info := range infos {
		if info.runID == "" {
			if reason := uncheckedReason(info.err); reason != "" {
				errorf(stderr, "warning: node %s %s: whether it is the server of another node is not checked", nodes[i].label, reason)
			}
			continue
		}
		if j, dup := first[info.runID]; dup {
			return fmt.Errorf("node %s is given twice (also as %s): both reach the server whose run_id is %s", nodes[i].label, nodes[j].label, info.runID)
		}
		first[info.runID] = i
	}
	return nil
}

// uncheckedReason says why a node that gave no run_id cannot be checked,
// or returns "" when the node failed as the lock will report.
func uncheckedReason(err error) string {
	var reply goredislib.Error
	switch {
	case err == nil:
		return "gave no run_id in INFO"
	case !errors.As(err, &reply):
		return "" // not reached
	case strings.HasPrefix(err.Error(), "WRONGPASS"), strings.HasPrefix(err.Error(), "NOAUTH"):
		return ""
	}
	return "refused INFO (" + err.Error() + ")"
}
