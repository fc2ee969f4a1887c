package server

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/clusterdns/clusterdns/forward"
	"github.com/clusterdns/clusterdns/resolver"
)

// validator checks a decoded Config and places every error in the file using
// the lines the decoder recorded.
type validator struct {
	*nodeDecoder
	flags map[string]string // top-level key -> flag that set it
}

// validate runs every section's checks, then parses addresses and refuses
// forwarding loops. It fills cfg's parsed fields.
func (v *validator) validate(cfg *Config) error {
	checks := []struct {
		section string
		check   func() error
	}{
		{"listen", func() error { return v.listenAddrs(cfg) }},
		{"limits", cfg.Limits.validate},
		{"lameduck", func() error {
			if cfg.Lameduck < 0 {
				return errors.New("must not be negative")
			}
			return nil
		}},
		{"log", cfg.Log.validate},
		{"http", cfg.HTTP.validate},
		{"cache", func() error {
			if !cfg.Cache.Enabled {
				return nil
			}
			return cfg.Cache.Validate()
		}},
		{"forward", cfg.Forward.Validate},
		{"kubernetes", func() error {
			if cfg.Kubernetes == nil {
				return nil
			}
			return cfg.Kubernetes.Validate()
		}},
		{"forward", func() error { return v.upstreams(cfg) }},
	}
	for _, c := range checks {
		if err := c.check(); err != nil {
			return v.place(resolver.Prefix(c.section, err))
		}
	}
	return nil
}

// place turns a *resolver.FieldError into a *ConfigError at the line of its
// path, or of the nearest enclosing key the file has.
func (v *validator) place(err error) error {
	var fe *resolver.FieldError
	if !errors.As(err, &fe) {
		return &ConfigError{File: v.file, Err: err}
	}
	field := v.canonical(fe.Field)
	top, _, _ := strings.Cut(field, ".")
	top, _, _ = strings.Cut(top, "[")
	if flag, ok := v.flags[top]; ok {
		return &ConfigError{File: flag + " flag", Field: field, Err: fe.Err}
	}
	for p := field; p != ""; p = parent(p) {
		if line, ok := v.lines[p]; ok {
			return &ConfigError{File: v.file, Line: line, Field: field, Err: fe.Err}
		}
	}
	return &ConfigError{File: v.file, Field: field, Err: fe.Err}
}

// canonical rewrites a path whose map key is spelled with a dot
// ("forward.zones.corp.example.[1]") to the quoted form the decoder recorded
// (`forward.zones["corp.example."][1]`). The longest matching entry wins,
// since keys may themselves contain dots.
func (v *validator) canonical(path string) string {
	best := ""
	for dotted := range v.dotted {
		rest, ok := strings.CutPrefix(path, dotted)
		if ok && (rest == "" || rest[0] == '[' || rest[0] == '.') && len(dotted) > len(best) {
			best = dotted
		}
	}
	if best == "" {
		return path
	}
	return v.dotted[best] + path[len(best):]
}

// parent drops the last component of a key path: a[1] -> a, a.b -> a,
// a["x.y"] -> a.
func parent(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndex(p, "["); i >= 0 {
			// a quoted map key may itself contain brackets or dots
			if j := strings.LastIndex(p, `["`); j >= 0 && strings.HasSuffix(p, `"]`) {
				i = j
			}
			return p[:i]
		}
	}
	if i := strings.LastIndexAny(p, ".["); i >= 0 {
		return p[:i]
	}
	return ""
}

func (v *validator) listenAddrs(cfg *Config) error {
	if len(cfg.Listen) == 0 {
		return errors.New("at least one address is required")
	}
	cfg.listen = make([]netip.AddrPort, 0, len(cfg.Listen))
	for i, s := range cfg.Listen {
		ap, err := parseListen(s)
		if err != nil {
			return &resolver.FieldError{Field: "[" + strconv.Itoa(i) + "]", Err: err}
		}
		if slices.Contains(cfg.listen, ap) && ap.Port() != 0 {
			return resolver.FieldErrorf("["+strconv.Itoa(i)+"]", "%s is listed twice", s)
		}
		cfg.listen = append(cfg.listen, ap)
	}
	return nil
}

// parseListen parses "ip:port", "[v6]:port" or ":port"; the last becomes the
// IPv6 unspecified address (every address, both families).
func parseListen(s string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf(`must be "ip:port" ("[v6]:port", ":port" for every address), got %q`, s)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("port must be a number from 0 to 65535, got %q", port)
	}
	if host == "" {
		return netip.AddrPortFrom(netip.IPv6Unspecified(), uint16(p)), nil
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("must be an IP address and port, got %q", s)
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(p)), nil
}

// upstreams reads every upstream (resolv.conf files included) and refuses
// the ones that are our own listen addresses.
func (v *validator) upstreams(cfg *Config) error {
	ups, err := parseEach("upstreams", cfg.Forward.Upstreams)
	if err != nil {
		return err
	}
	cfg.upstreams = flatten(ups)
	var local localAddrs
	if err := loops("upstreams", cfg.Forward.Upstreams, ups, cfg.listen, &local); err != nil {
		return err
	}
	if len(cfg.Forward.Zones) == 0 {
		return nil
	}
	cfg.zones = make(map[string][]netip.AddrPort, len(cfg.Forward.Zones))
	for _, zone := range slices.Sorted(maps.Keys(cfg.Forward.Zones)) {
		list := cfg.Forward.Zones[zone]
		field := fmt.Sprintf("zones[%q]", zone)
		if len(list) == 0 {
			return resolver.FieldErrorf(field, "at least one upstream is required")
		}
		zu, err := parseEach(field, list)
		if err != nil {
			return err
		}
		if err := loops(field, list, zu, cfg.listen, &local); err != nil {
			return err
		}
		cfg.zones[zone] = flatten(zu)
	}
	return nil
}

// parseEach parses the entries one at a time so an error (or a loop) names
// the entry it came from even when a resolv.conf path expands to several
// addresses.
func parseEach(field string, list []string) ([][]netip.AddrPort, error) {
	out := make([][]netip.AddrPort, len(list))
	for i, s := range list {
		aps, err := forward.ParseUpstreams([]string{s})
		if err != nil {
			var fe *resolver.FieldError
			if errors.As(err, &fe) {
				err = fe.Err
			}
			return nil, &resolver.FieldError{Field: fmt.Sprintf("%s[%d]", field, i), Err: err}
		}
		out[i] = aps
	}
	return out, nil
}

// flatten joins the per-entry lists, dropping repeats as ParseUpstreams
// does for a whole list.
func flatten(lists [][]netip.AddrPort) []netip.AddrPort {
	var out []netip.AddrPort
	for _, l := range lists {
		for _, ap := range l {
			if !slices.Contains(out, ap) {
				out = append(out, ap)
			}
		}
	}
	return out
}

func loops(field string, entries []string, ups [][]netip.AddrPort, listen []netip.AddrPort, local *localAddrs) error {
	for i, aps := range ups {
		for _, u := range aps {
			if l, ok := ownAddress(u, listen, local); ok {
				from := ""
				if entries[i] != u.String() {
					from = fmt.Sprintf(" (from %s)", entries[i])
				}
				return &resolver.FieldError{Field: fmt.Sprintf("%s[%d]", field, i),
					Err: fmt.Errorf("%w: %s%s is our own listen address %s", ErrForwardingLoop, u, from, l)}
			}
		}
	}
	return nil
}

// ownAddress reports the listen address u would reach: the same port and IP,
// or a listener on the unspecified address and u loopback or one of this
// machine's addresses.
func ownAddress(u netip.AddrPort, listen []netip.AddrPort, local *localAddrs) (netip.AddrPort, bool) {
	ua := u.Addr().Unmap()
	for _, l := range listen {
		if l.Port() != u.Port() || l.Port() == 0 {
			continue
		}
		if l.Addr() == ua {
			return l, true
		}
		if l.Addr().IsUnspecified() && (ua.IsLoopback() || ua.IsUnspecified() || local.has(ua)) {
			return l, true
		}
	}
	return netip.AddrPort{}, false
}

// localAddrs lists the machine's interface addresses, read once and only
// when needed.
type localAddrs struct {
	read  bool
	addrs []netip.Addr
}

func (l *localAddrs) has(a netip.Addr) bool {
	if !l.read {
		l.read = true
		ifas, _ := net.InterfaceAddrs() // unreadable: only loopback counts
		for _, ifa := range ifas {
			if n, ok := ifa.(*net.IPNet); ok {
				if x, ok := netip.AddrFromSlice(n.IP); ok {
					l.addrs = append(l.addrs, x.Unmap())
				}
			}
		}
	}
	return slices.Contains(l.addrs, a.WithZone(""))
}

func (l Limits) validate() error {
	switch {
	case l.MaxInflight < 1:
		return resolver.FieldErrorf("maxInflight", "must be at least 1, got %d", l.MaxInflight)
	case l.QueryTimeout <= 0:
		return resolver.FieldErrorf("queryTimeout", "must be positive, got %s", l.QueryTimeout)
	case l.UDPSockets < 0 || l.UDPSockets > 1024:
		return resolver.FieldErrorf("udpSockets", "must be between 0 (one per CPU) and 1024, got %d", l.UDPSockets)
	case l.TCPConns < 1:
		return resolver.FieldErrorf("tcpConns", "must be at least 1, got %d", l.TCPConns)
	case l.TCPIdleTimeout <= 0:
		return resolver.FieldErrorf("tcpIdleTimeout", "must be positive, got %s", l.TCPIdleTimeout)
	case l.TCPPipeline < 1:
		return resolver.FieldErrorf("tcpPipeline", "must be at least 1, got %d", l.TCPPipeline)
	}
	return nil
}

func (l Log) validate() error {
	if _, err := l.level(); err != nil {
		return &resolver.FieldError{Field: "level", Err: err}
	}
	if l.Format != FormatText && l.Format != FormatJSON {
		return resolver.FieldErrorf("format", "must be text or json, got %q", l.Format)
	}
	return nil
}

func (l Log) level() (slog.Level, error) {
	switch l.Level {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("must be debug, info, warn or error, got %q", l.Level)
}

func (h HTTP) validate() error {
	for _, e := range h.endpoints() {
		if e.addr == "" {
			continue
		}
		_, port, err := net.SplitHostPort(e.addr)
		if err == nil {
			_, err = strconv.ParseUint(port, 10, 16)
		}
		if err != nil {
			return resolver.FieldErrorf(e.name, `must be "host:port" (":%s" for every address) or "" to disable, got %q`, e.defPort, e.addr)
		}
	}
	return nil
}

// endpoint is one HTTP endpoint and the address it is configured on.
type endpoint struct {
	name, path, addr, defPort string
}

func (h HTTP) endpoints() []endpoint {
	return []endpoint{
		{"metrics", "/metrics", h.Metrics, "9153"},
		{"health", "/health", h.Health, "8080"},
		{"ready", "/ready", h.Ready, "8181"},
		{"debug", "/debug/pprof/", h.Debug, "6060"},
	}
}
