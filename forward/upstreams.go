package forward

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver"
)

// Errors of upstream parsing, checked with errors.Is.
var (
	// ErrBadUpstream: an entry is neither an IP address (with optional port)
	// nor a resolv.conf path. Hostnames are rejected: nothing can resolve
	// them before the server runs.
	ErrBadUpstream = errors.New("bad upstream")
	// ErrNoNameservers: a resolv.conf file holds no nameserver line.
	ErrNoNameservers = errors.New("no nameserver lines")
)

const defaultPort = 53

// ParseUpstreams turns upstream entries into addresses: "ip:port", "ip"
// (port 53), "[v6]:port", or a resolv.conf path (an entry starting with "/",
// "." or "~") whose nameserver lines are used. Duplicates are dropped, first
// one kept. Errors are *resolver.FieldError with Field "[i]".
func ParseUpstreams(list []string) ([]netip.AddrPort, error) {
	if len(list) == 0 {
		return nil, resolver.FieldErrorf("", "%w: at least one upstream is required", ErrBadUpstream)
	}
	out := make([]netip.AddrPort, 0, len(list))
	for i, s := range list {
		var got []netip.AddrPort
		var err error
		if isPath(s) {
			got, err = readResolvConf(s)
		} else {
			var ap netip.AddrPort
			ap, err = parseAddrPort(s)
			got = []netip.AddrPort{ap}
		}
		if err != nil {
			return nil, &resolver.FieldError{Field: "[" + strconv.Itoa(i) + "]", Err: err}
		}
		for _, ap := range got {
			if !containsAddr(out, ap) {
				out = append(out, ap)
			}
		}
	}
	return out, nil
}

func containsAddr(list []netip.AddrPort, ap netip.AddrPort) bool {
	for _, x := range list {
		if x == ap {
			return true
		}
	}
	return false
}

func isPath(s string) bool {
	return strings.HasPrefix(s, "/") || strings.HasPrefix(s, ".") || strings.HasPrefix(s, "~")
}

// parseAddrPort parses an IP literal entry.
func parseAddrPort(s string) (netip.AddrPort, error) {
	s = strings.TrimSpace(s)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return checkAddr(s, ap.Addr(), ap.Port())
	}
	if a, err := netip.ParseAddr(s); err == nil { // "1.2.3.4", "::1"
		return checkAddr(s, a, defaultPort)
	}
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' { // "[::1]"
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil && a.Is6() {
			return checkAddr(s, a, defaultPort)
		}
	}
	return netip.AddrPort{}, fmt.Errorf("%w: %q is not an IP address with optional port (hostnames are not resolved; give an IP or a resolv.conf path)", ErrBadUpstream, s)
}

// checkAddr rejects addresses no query can be sent to. A zone is kept only
// on link-local addresses, the only ones it routes.
func checkAddr(entry string, a netip.Addr, port uint16) (netip.AddrPort, error) {
	a = a.Unmap()
	if a.Zone() != "" && !a.IsLinkLocalUnicast() {
		a = a.WithZone("")
	}
	switch {
	case a.IsUnspecified() || a.IsMulticast():
		return netip.AddrPort{}, fmt.Errorf("%w: %q is not a unicast address", ErrBadUpstream, entry)
	case port == 0:
		return netip.AddrPort{}, fmt.Errorf("%w: %q has port 0", ErrBadUpstream, entry)
	}
	return netip.AddrPortFrom(a, port), nil
}

// readResolvConf returns the nameservers of a resolv.conf file, port 53.
// Other keywords (search, options, domain, sortlist) and comments are
// ignored, as the C library does.
func readResolvConf(path string) ([]netip.AddrPort, error) {
	p, err := expandHome(path)
	if err != nil {
		return nil, err
	}
	data, err := readSmallFile(p)
	if err != nil {
		return nil, fmt.Errorf("read resolv.conf: %w", err)
	}
	var out []netip.AddrPort
	for n, line := range strings.Split(string(data), "\n") {
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "nameserver" {
			continue
		}
		if len(f) < 2 {
			return nil, fmt.Errorf("%w: %s line %d: nameserver without an address", ErrBadUpstream, path, n+1)
		}
		a, err := netip.ParseAddr(f[1])
		if err != nil {
			return nil, fmt.Errorf("%w: %s line %d: nameserver %q is not an IP address", ErrBadUpstream, path, n+1, f[1])
		}
		ap, err := checkAddr(f[1], a, defaultPort)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, n+1, err)
		}
		if !containsAddr(out, ap) {
			out = append(out, ap)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w in %s", ErrNoNameservers, path)
	}
	return out, nil
}

// maxResolvConf bounds what is read of a resolv.conf file; real ones are a
// few hundred bytes.
const maxResolvConf = 64 << 10

// readSmallFile reads a regular file of at most maxResolvConf bytes. A
// device, FIFO or directory named by mistake would block or never end
// (/dev/zero, /dev/stdin): those are refused before opening.
func readSmallFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrBadUpstream, path)
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, maxResolvConf+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxResolvConf {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrBadUpstream, path, maxResolvConf)
	}
	return data, nil
}

func expandHome(path string) (string, error) {
	if !strings.HasPrefix(path, "~") {
		return path, nil
	}
	if path != "~" && !strings.HasPrefix(path, "~/") {
		return "", fmt.Errorf("%w: %q: only ~/ is expanded", ErrBadUpstream, path)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("expand %s: %w", path, err)
	}
	return filepath.Join(home, path[1:]), nil
}

// normalizeZone returns zone as a lower-case FQDN, or an error when it is not
// a domain name.
func normalizeZone(zone string) (string, error) {
	z := strings.TrimSpace(zone)
	if z == "" {
		return "", errors.New("empty zone name")
	}
	z = strings.ToLower(dns.Fqdn(z))
	if _, ok := dns.IsDomainName(z); !ok {
		return "", fmt.Errorf("%q is not a domain name", zone)
	}
	return z, nil
}
