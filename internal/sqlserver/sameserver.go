package sqlserver

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/microsoft/go-mssqldb/msdsn"

	"github.com/keyescrow/keyescrow/internal/secret"
)

// DefaultPort is where a default instance listens unless told otherwise.
const DefaultPort = 1433

// resolveTimeout bounds each name lookup of SameServer.
const resolveTimeout = 3 * time.Second

// endpoint is where a DSN connects: host, instance and port as go-mssqldb
// reads them (port 0: not given, found through SQL Browser by instance).
type endpoint struct {
	host     string
	instance string // "" for the default instance
	port     uint64
}

func (e endpoint) String() string {
	s := e.host
	if e.instance != "" {
		s += `\` + e.instance
	}
	if e.port != 0 {
		s += ":" + strconv.FormatUint(e.port, 10)
	}
	return s
}

// parseEndpoint reads a DSN in any form go-mssqldb accepts (URL
// sqlserver://host:port/instance, ADO server=host\instance,port;… or
// odbc:…) with the driver's own parser.
func parseEndpoint(dsn string) (endpoint, error) {
	cfg, err := msdsn.Parse(dsn)
	if err != nil {
		return endpoint{}, err
	}
	e := endpoint{host: normHost(cfg.Host), instance: cfg.Instance, port: cfg.Port}
	// The ODBC form keeps "host,port" whole; read the port as ADO does.
	if h, p, ok := strings.Cut(e.host, ","); ok && e.port == 0 {
		if n, err := strconv.ParseUint(strings.TrimSpace(p), 10, 16); err == nil {
			e.host, e.port = normHost(strings.TrimSpace(h)), n
		}
	}
	if strings.EqualFold(e.instance, DefaultInstance) {
		e.instance = ""
	}
	if e.port == 0 && e.instance == "" {
		e.port = DefaultPort
	}
	return e, nil
}

func normHost(h string) string {
	h = strings.ToLower(strings.TrimSuffix(strings.Trim(h, "[]"), "."))
	if h == "" || h == "." || h == "(local)" {
		return "localhost"
	}
	return h
}

// SameServer reports whether DSNs a and b (URL, ADO or ODBC form) point to
// the same SQL Server, for the restore drill's refusal to touch production,
// and why, in words without credentials. It answers true whenever it cannot
// prove them different:
//
//   - hosts: equal ignoring case; localhost, 127.0.0.0/8, ::1, this machine's
//     name and its interface addresses all count as this machine; otherwise
//     two names that resolve (net.LookupHost, best effort, nothing beyond the
//     resolver) to a common address are the same host;
//   - on the same host: the same port (1433 when neither port nor instance is
//     given) is the same server, different ports are different servers;
//     without ports, instance names decide (MSSQLSERVER is the default
//     instance); a port on one side and only an instance name on the other
//     cannot be told apart and counts as the same;
//   - a DSN that does not parse counts as the same.
//
// The drill should also compare SERVERPROPERTY('ServerName') and
// 'MachineName' once connected; this check runs before any connection.
func SameServer(ctx context.Context, a, b secret.Value) (same bool, why string) {
	ea, err := parseEndpoint(a.Reveal())
	if err != nil {
		return true, fmt.Sprintf("the first DSN cannot be read (%s), so it cannot be shown to be a different server", redactParseError(err))
	}
	eb, err := parseEndpoint(b.Reveal())
	if err != nil {
		return true, fmt.Sprintf("the second DSN cannot be read (%s), so it cannot be shown to be a different server", redactParseError(err))
	}
	sameHost, hostWhy := sameHost(ctx, ea.host, eb.host)
	if !sameHost {
		return false, hostWhy
	}
	switch {
	case ea.port != 0 && eb.port != 0 && ea.port == eb.port:
		return true, fmt.Sprintf("%s and %s: %s, and both use port %d", ea, eb, hostWhy, ea.port)
	case ea.port != 0 && eb.port != 0:
		return false, fmt.Sprintf("%s and %s: %s, but the ports differ (%d, %d)", ea, eb, hostWhy, ea.port, eb.port)
	case ea.port == 0 && eb.port == 0 && strings.EqualFold(ea.instance, eb.instance):
		return true, fmt.Sprintf("%s and %s: %s, and both name instance %s", ea, eb, hostWhy, ea.instance)
	case ea.port == 0 && eb.port == 0:
		return false, fmt.Sprintf("%s and %s: %s, but the instances differ (%s, %s)", ea, eb, hostWhy, ea.instance, eb.instance)
	}
	return true, fmt.Sprintf("%s and %s: %s, and one gives a port while the other names an instance whose port SQL Browser decides, so they may be the same server: give both ports, or both instance names", ea, eb, hostWhy)
}

// sameHost decides whether two normalised host names are one machine.
func sameHost(ctx context.Context, a, b string) (bool, string) {
	if a == b {
		return true, "the same host " + a
	}
	la, lb := isLocal(a), isLocal(b)
	if la && lb {
		return true, fmt.Sprintf("%s and %s are both this machine", a, b)
	}
	addrsA, errA := lookup(ctx, a)
	addrsB, errB := lookup(ctx, b)
	if errA != nil || errB != nil {
		return false, fmt.Sprintf("the hosts %s and %s differ by name (not both could be resolved to compare addresses)", a, b)
	}
	for _, x := range addrsA {
		if slices.Contains(addrsB, x) {
			return true, fmt.Sprintf("%s and %s resolve to the same address %s", a, b, x)
		}
	}
	if allLocal(addrsA) && allLocal(addrsB) {
		return true, fmt.Sprintf("%s and %s both resolve to this machine", a, b)
	}
	return false, fmt.Sprintf("the hosts %s and %s resolve to different addresses", a, b)
}

// lookup resolves a name (an address stays itself) to canonical addresses.
func lookup(ctx context.Context, host string) ([]string, error) {
	if ip := net.ParseIP(host); ip != nil {
		return []string{ip.String()}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupHost(ctx, host)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(addrs))
	for _, s := range addrs {
		if ip := net.ParseIP(s); ip != nil {
			out = append(out, ip.String())
		}
	}
	return out, nil
}

func allLocal(addrs []string) bool {
	if len(addrs) == 0 {
		return false
	}
	for _, a := range addrs {
		if !isLocal(a) {
			return false
		}
	}
	return true
}

// isLocal: a loopback name or address, this machine's name, or one of its
// interface addresses.
func isLocal(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip.IsLoopback() || ip.IsUnspecified() {
			return true
		}
		addrs, err := net.InterfaceAddrs()
		if err != nil {
			return false
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				return true
			}
		}
		return false
	}
	name, err := os.Hostname()
	if err != nil || name == "" {
		return false
	}
	name = normHost(name)
	short, _, _ := strings.Cut(name, ".")
	hshort, _, _ := strings.Cut(host, ".")
	// SQLHOST01 and sqlhost01.corp.example name the same machine here.
	return hshort == short
}
