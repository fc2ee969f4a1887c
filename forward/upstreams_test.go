package forward

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clusterdns/clusterdns/resolver"
)

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseUpstreams(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	resolv := writeFile(t, dir, "resolv.conf", `# generated
search default.svc.cluster.local svc.cluster.local
options ndots:5 timeout:1
nameserver 192.0.2.10
; a comment
nameserver   2001:db8::53   # trailing comment
nameserver fe80::1%eth0
nameserver 2001:db8::54%eth0
nameserver 192.0.2.10
`)
	empty := writeFile(t, dir, "empty.conf", "search example.org\noptions ndots:2\n# nameserver 192.0.2.1\n")
	badNS := writeFile(t, dir, "bad.conf", "nameserver 192.0.2.1\nnameserver dns.example.org\n")
	noAddr := writeFile(t, dir, "noaddr.conf", "nameserver\n")
	writeFile(t, dir, "home.conf", "nameserver 192.0.2.99\n")
	huge := writeFile(t, dir, "huge.conf", "nameserver 192.0.2.1\n"+strings.Repeat("#", maxResolvConf))

	ap := netip.MustParseAddrPort
	for _, tc := range []struct {
		name    string
		in      []string
		want    []netip.AddrPort
		field   string // of the error
		sentry  error
		errText string
	}{
		{name: "ip", in: []string{"192.0.2.1"}, want: []netip.AddrPort{ap("192.0.2.1:53")}},
		{name: "ip port", in: []string{"192.0.2.1:5353"}, want: []netip.AddrPort{ap("192.0.2.1:5353")}},
		{name: "v6 bare", in: []string{"2001:db8::1"}, want: []netip.AddrPort{ap("[2001:db8::1]:53")}},
		{name: "v6 brackets", in: []string{"[2001:db8::1]"}, want: []netip.AddrPort{ap("[2001:db8::1]:53")}},
		{name: "v6 port", in: []string{"[2001:db8::1]:5353"}, want: []netip.AddrPort{ap("[2001:db8::1]:5353")}},
		{name: "v4-mapped", in: []string{"[::ffff:192.0.2.1]:53"}, want: []netip.AddrPort{ap("192.0.2.1:53")}},
		{name: "dedup", in: []string{"192.0.2.1", "192.0.2.1:53", "192.0.2.2"},
			want: []netip.AddrPort{ap("192.0.2.1:53"), ap("192.0.2.2:53")}},
		{name: "resolv.conf", in: []string{"192.0.2.1", resolv},
			want: []netip.AddrPort{ap("192.0.2.1:53"), ap("192.0.2.10:53"), ap("[2001:db8::53]:53"),
				ap("[fe80::1%eth0]:53"), ap("[2001:db8::54]:53")}},
		{name: "home", in: []string{"~/home.conf"}, want: []netip.AddrPort{ap("192.0.2.99:53")}},
		{name: "relative", in: []string{"./does-not-exist.conf"}, field: "[0]", sentry: os.ErrNotExist},
		{name: "hostname", in: []string{"192.0.2.1", "dns.example.org"}, field: "[1]", sentry: ErrBadUpstream, errText: "hostnames"},
		{name: "hostname port", in: []string{"dns.example.org:53"}, field: "[0]", sentry: ErrBadUpstream},
		{name: "bad port", in: []string{"192.0.2.1:99999"}, field: "[0]", sentry: ErrBadUpstream},
		{name: "port zero", in: []string{"192.0.2.1:0"}, field: "[0]", sentry: ErrBadUpstream},
		{name: "unspecified", in: []string{"0.0.0.0"}, field: "[0]", sentry: ErrBadUpstream},
		{name: "empty entry", in: []string{""}, field: "[0]", sentry: ErrBadUpstream},
		{name: "empty list", in: nil, sentry: ErrBadUpstream},
		{name: "no nameservers", in: []string{"192.0.2.1", empty}, field: "[1]", sentry: ErrNoNameservers, errText: empty},
		{name: "bad nameserver", in: []string{badNS}, field: "[0]", sentry: ErrBadUpstream, errText: badNS + " line 2"},
		{name: "nameserver no address", in: []string{noAddr}, field: "[0]", sentry: ErrBadUpstream, errText: "line 1"},
		{name: "other user home", in: []string{"~root/resolv.conf"}, field: "[0]", sentry: ErrBadUpstream},
		// never read: they would block or not end
		{name: "directory", in: []string{dir}, field: "[0]", sentry: ErrBadUpstream, errText: "not a regular file"},
		{name: "device", in: []string{"/dev/zero"}, field: "[0]", sentry: ErrBadUpstream, errText: "not a regular file"},
		{name: "too large", in: []string{huge}, field: "[0]", sentry: ErrBadUpstream, errText: "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseUpstreams(tc.in)
			if tc.sentry == nil {
				if err != nil || !slices.Equal(got, tc.want) {
					t.Fatalf("got %v, %v; want %v", got, err, tc.want)
				}
				return
			}
			var fe *resolver.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !errors.Is(err, tc.sentry) || !strings.Contains(err.Error(), tc.errText) {
				t.Fatalf("error %v; want a FieldError on %q wrapping %v and mentioning %q", err, tc.field, tc.sentry, tc.errText)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string // error substring; "" = valid
	}{
		{"default", func(*Config) {}, ""},
		{"zones", func(c *Config) {
			c.Zones = map[string][]string{"Corp.Example": {"192.0.2.1"}, "example.net.": {"/etc/hosts.conf"}}
		}, ""},
		{"no upstreams", func(c *Config) { c.Upstreams = nil }, "upstreams: at least one"},
		{"hostname upstream", func(c *Config) { c.Upstreams = []string{"192.0.2.1", "dns.google"} }, "upstreams[1]: bad upstream"},
		{"policy", func(c *Config) { c.Policy = "fastest" }, "policy:"},
		{"maxConcurrent", func(c *Config) { c.MaxConcurrent = 0 }, "maxConcurrent:"},
		{"maxFails", func(c *Config) { c.MaxFails = -1 }, "maxFails:"},
		{"healthCheck", func(c *Config) { c.HealthCheck = 0 }, "healthCheck:"},
		{"timeout", func(c *Config) { c.Timeout = -time.Second }, "timeout:"},
		{"expire", func(c *Config) { c.Expire = 0 }, "expire:"},
		{"loopCheck off", func(c *Config) { c.LoopCheck = 0 }, ""},
		{"loopCheck", func(c *Config) { c.LoopCheck = -time.Second }, "loopCheck:"},
		{"zone name", func(c *Config) { c.Zones = map[string][]string{"bad..zone": {"192.0.2.1"}} }, "zones.bad..zone:"},
		{"empty zone name", func(c *Config) { c.Zones = map[string][]string{" ": {"192.0.2.1"}} }, "empty zone"},
		{"zone duplicate", func(c *Config) {
			c.Zones = map[string][]string{"example.org": {"192.0.2.1"}, "Example.Org.": {"192.0.2.2"}}
		}, "same zone"},
		{"zone without upstreams", func(c *Config) { c.Zones = map[string][]string{"example.org.": nil} }, "zones.example.org.: at least one"},
		{"zone hostname", func(c *Config) { c.Zones = map[string][]string{"example.org.": {"ns.example.org"}} }, "zones.example.org.[0]: bad upstream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mutate(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestNewReadsResolvConfAndDedups(t *testing.T) {
	dir := t.TempDir()
	resolv := writeFile(t, dir, "resolv.conf", "nameserver 192.0.2.10\nnameserver 192.0.2.11\n")
	cfg := Default()
	cfg.Upstreams = []string{resolv, "192.0.2.12"}
	cfg.Zones = map[string][]string{"corp.example.": {"192.0.2.11", "192.0.2.13:5353"}}
	f, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.AddrPort{
		netip.MustParseAddrPort("192.0.2.10:53"), netip.MustParseAddrPort("192.0.2.11:53"),
		netip.MustParseAddrPort("192.0.2.12:53"), netip.MustParseAddrPort("192.0.2.13:5353"),
	}
	if got := f.Upstreams(); !slices.Equal(got, want) {
		t.Errorf("Upstreams() = %v, want %v", got, want)
	}
	if f.Name() != "forward" {
		t.Errorf("Name() = %q", f.Name())
	}

	cfg.Upstreams = []string{filepath.Join(dir, "missing.conf")}
	_, err = New(cfg, Options{})
	var fe *resolver.FieldError
	if !errors.As(err, &fe) || fe.Field != "upstreams[0]" || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing resolv.conf: %v, want FieldError upstreams[0] wrapping ErrNotExist", err)
	}
}
