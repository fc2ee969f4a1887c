package kubeindex

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/clusterdns/clusterdns/resolver"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(*Config)
		field string // "" for valid
		msg   string
	}{
		{"default", func(*Config) {}, "", ""},
		{"full", func(c *Config) {
			c.Zone = "Corp.Example."
			c.ReverseZones = []string{"in-addr.arpa", "96.10.in-addr.arpa.", "0.0.d.f.ip6.arpa", "10.96.0.0/12", "fd00::/108"}
			c.Transfer.Allow = []string{"10.0.0.0/8", "::1/128"}
			c.Namespaces = []string{"default", "kube-system"}
			c.Fallthrough = []string{".", "in-addr.arpa", "_tcp.corp.example"}
			c.Pods = PodsVerified
		}, "", ""},
		{"empty zone", func(c *Config) { c.Zone = "" }, "zone", "must not be empty"},
		{"root zone", func(c *Config) { c.Zone = "." }, "zone", "not a valid domain name"},
		{"bad zone", func(c *Config) { c.Zone = "cluster..local" }, "zone", "not a valid domain name"},
		{"zone with space", func(c *Config) { c.Zone = "clus ter.local" }, "zone", "not a valid domain name"},
		{"ttl", func(c *Config) { c.TTL = 3601 }, "ttl", "between 0 and 3600"},
		{"pods", func(c *Config) { c.Pods = "sometimes" }, "pods", "disabled, insecure or verified"},
		{"nsName one label", func(c *Config) { c.NSName = "kube-dns" }, "nsName", "service.namespace"},
		{"nsName three labels", func(c *Config) { c.NSName = "a.b.c" }, "nsName", "service.namespace"},
		{"nsName empty", func(c *Config) { c.NSName = "" }, "nsName", "service.namespace"},
		{"reverse not arpa", func(c *Config) { c.ReverseZones = []string{"in-addr.arpa", "example.com"} }, "reverseZones[1]", "CIDR or a zone"},
		{"reverse bad octet", func(c *Config) { c.ReverseZones = []string{"300.in-addr.arpa"} }, "reverseZones[0]", "not an octet"},
		{"reverse bad nibble", func(c *Config) { c.ReverseZones = []string{"ip6.arpa", "x.ip6.arpa"} }, "reverseZones[1]", "not a hex nibble"},
		{"reverse bad CIDR", func(c *Config) { c.ReverseZones = []string{"10.0.0.0/40"} }, "reverseZones[0]", "not a CIDR"},
		{"allow not CIDR", func(c *Config) { c.Transfer.Allow = []string{"10.0.0.0/8", "10.0.0.1"} }, "transfer.allow[1]", "must be a CIDR"},
		{"namespace upper", func(c *Config) { c.Namespaces = []string{"Default"} }, "namespaces[0]", "lower-case DNS label"},
		{"namespace dotted", func(c *Config) { c.Namespaces = []string{"ok", "a.b"} }, "namespaces[1]", "lower-case DNS label"},
		{"namespace long", func(c *Config) { c.Namespaces = []string{strings.Repeat("a", 64)} }, "namespaces[0]", "lower-case DNS label"},
		{"fallthrough", func(c *Config) { c.Fallthrough = []string{"ok.", "bad..zone"} }, "fallthrough[1]", "not a valid zone"},
	} {
		c := Default()
		tc.edit(&c)
		err := c.Validate()
		if tc.field == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		var fe *resolver.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: got %v, want field %s with %q", tc.name, err, tc.field, tc.msg)
		}
	}
}

func TestSettings(t *testing.T) {
	c := Default()
	c.Zone = "Corp.Example"
	c.NSName = "DNS.Infra"
	c.ReverseZones = []string{"10.96.0.0/12", "in-addr.arpa.", "10.in-addr.arpa"}
	c.Transfer.Allow = []string{"10.1.2.3/8"}
	c.Fallthrough = []string{"Corp.Example"}
	s, err := c.settings()
	if err != nil {
		t.Fatal(err)
	}
	if s.zone != "corp.example." || s.mname != "ns.dns.corp.example." || s.rname != "hostmaster.corp.example." || s.nsTarget != "dns.infra.svc.corp.example." {
		t.Errorf("names: %+v", s)
	}
	if want := []string{"corp.example.", "10.in-addr.arpa.", "in-addr.arpa."}; !slices.Equal(s.zones(), want) {
		t.Errorf("zones %v, want %v", s.zones(), want)
	}
	if len(s.allow) != 1 || s.allow[0] != netip.MustParsePrefix("10.0.0.0/8") {
		t.Errorf("allow %v", s.allow)
	}
	if !s.fallsThrough("x.corp.example.") || s.fallsThrough("x.example.") {
		t.Errorf("fallthrough %v", s.fallZones)
	}
}
