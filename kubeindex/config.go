package kubeindex

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver"
)

// Config tunes the cluster index and its DNS answers. The server decodes the
// `kubernetes:` section onto Default(); an absent section means no index.
type Config struct {
	// Zone is the cluster domain, e.g. "cluster.local".
	Zone string `yaml:"zone"`
	// Kubeconfig is a kubeconfig path ("~" expanded); "" means in-cluster.
	Kubeconfig string `yaml:"kubeconfig"`
	// Context selects a kubeconfig context; "" means its current one.
	Context string `yaml:"context"`
	// TTL of answers, in seconds (0-3600).
	TTL int `yaml:"ttl"`
	// Pods is the pod-record mode: disabled, insecure or verified.
	Pods string `yaml:"pods"`
	// EndpointPodNames names endpoints without a hostname by their pod name
	// when it fits in a label.
	EndpointPodNames bool `yaml:"endpointPodNames"`
	// Namespaces, when non-empty, are the only namespaces exposed.
	Namespaces []string `yaml:"namespaces"`
	// IgnoreEmptyService answers NXDOMAIN for services with no ready endpoint.
	IgnoreEmptyService bool `yaml:"ignoreEmptyService"`
	// Fallthrough zones: an NXDOMAIN for a name in one of them is passed on to
	// the next stage instead of being answered.
	Fallthrough []string `yaml:"fallthrough"`
	// StartupTimeout is how long serving waits for the first sync before
	// answering SERVFAIL for the zone.
	StartupTimeout time.Duration `yaml:"startupTimeout"`
	// NSName is the "service.namespace" returned for the zone's NS record.
	NSName string `yaml:"nsName"`
	// ReverseZones are the reverse zones answered from the index: zone names
	// or CIDRs.
	ReverseZones []string `yaml:"reverseZones"`
	// Transfer controls AXFR of the cluster zone.
	Transfer Transfer `yaml:"transfer"`
	// QPS and Burst bound the API client; informers mostly watch, so the
	// defaults only matter for the initial list.
	QPS   float32 `yaml:"qps"`
	Burst int     `yaml:"burst"`
}

// Transfer lists who may AXFR the cluster zone.
type Transfer struct {
	// Allow holds CIDRs; empty refuses every transfer.
	Allow []string `yaml:"allow"`
}

// Pod-record modes.
const (
	PodsDisabled = "disabled"
	PodsInsecure = "insecure"
	PodsVerified = "verified"
)

// Default returns the configuration used for keys the file leaves out.
func Default() Config {
	return Config{
		Zone:           "cluster.local",
		TTL:            5,
		Pods:           PodsDisabled,
		StartupTimeout: 5 * time.Second,
		NSName:         "kube-dns.kube-system",
		ReverseZones:   []string{"in-addr.arpa.", "ip6.arpa."},
		QPS:            50,
		Burst:          100,
	}
}

// Validate reports the first invalid field as a *resolver.FieldError whose
// Field is the key path below the kubernetes section ("reverseZones[1]").
func (c Config) Validate() error {
	switch {
	case c.Zone == "":
		return resolver.FieldErrorf("zone", "must not be empty")
	case c.TTL < 0 || c.TTL > 3600:
		return resolver.FieldErrorf("ttl", "must be between 0 and 3600, got %d", c.TTL)
	case c.StartupTimeout < 0:
		return resolver.FieldErrorf("startupTimeout", "must not be negative")
	case c.QPS <= 0:
		return resolver.FieldErrorf("qps", "must be positive")
	case c.Burst < 1:
		return resolver.FieldErrorf("burst", "must be at least 1")
	}
	switch c.Pods {
	case PodsDisabled, PodsInsecure, PodsVerified:
	default:
		return resolver.FieldErrorf("pods", "must be disabled, insecure or verified, got %q", c.Pods)
	}
	_, err := c.settings()
	return err
}

// settings is the configuration in the form the handler uses per query:
// names lower case and fully qualified, CIDRs parsed, owner names of the
// fixed records built once. It is immutable after settings() returns.
type settings struct {
	zone        string // cluster zone, e.g. "cluster.local."
	ttl         uint32
	soaTTL      uint32 // min(ttl, 300): TTL of the SOA record itself
	mname       string // "ns.dns.<zone>"
	rname       string // "hostmaster.<zone>"
	pods        string
	ignoreEmpty bool
	nsService   string // service part of NSName
	nsNamespace string
	nsTarget    string // "<service>.<namespace>.svc.<zone>"
	reverse     []reverseZone
	allow       []netip.Prefix
	fallZones   []string // lower-case FQDNs; "." covers everything
	version     []string // TXT of dns-version (R1), shared by every reply
}

// reverseZone is one configured reverse zone. Name is the zone answered for
// (a CIDR rounded down to an octet or nibble boundary); Prefix limits which
// addresses inside it are ours.
type reverseZone struct {
	name   string
	prefix netip.Prefix
}

// settings validates the fields Validate leaves to it and returns their
// normalized form.
func (c Config) settings() (settings, error) {
	s := settings{
		zone:        strings.ToLower(dns.Fqdn(c.Zone)),
		ttl:         uint32(max(c.TTL, 0)),
		pods:        c.Pods,
		ignoreEmpty: c.IgnoreEmptyService,
		version:     []string{"1.1.0"},
	}
	if !isZoneName(s.zone) || s.zone == "." {
		return s, resolver.FieldErrorf("zone", "%q is not a valid domain name", c.Zone)
	}
	s.soaTTL = min(s.ttl, 300)
	s.mname = "ns.dns." + s.zone
	s.rname = "hostmaster." + s.zone
	svc, ns, ok := strings.Cut(strings.ToLower(c.NSName), ".")
	if !ok || !isLabel(svc) || !isLabel(ns) {
		return s, resolver.FieldErrorf("nsName", "must be \"service.namespace\" with two DNS labels, got %q", c.NSName)
	}
	s.nsService, s.nsNamespace = svc, ns
	s.nsTarget = svc + "." + ns + ".svc." + s.zone
	for i, z := range c.ReverseZones {
		rz, err := parseReverseZone(z)
		if err != nil {
			return s, resolver.FieldErrorf(fmt.Sprintf("reverseZones[%d]", i), "%w", err)
		}
		s.reverse = append(s.reverse, rz)
	}
	for i, a := range c.Transfer.Allow {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return s, resolver.FieldErrorf(fmt.Sprintf("transfer.allow[%d]", i), "must be a CIDR: %w", err)
		}
		s.allow = append(s.allow, p.Masked())
	}
	for i, n := range c.Namespaces {
		if !isLabel(n) || strings.ToLower(n) != n {
			return s, resolver.FieldErrorf(fmt.Sprintf("namespaces[%d]", i), "%q is not a lower-case DNS label", n)
		}
	}
	for i, z := range c.Fallthrough {
		f := strings.ToLower(dns.Fqdn(z))
		if !isZoneName(f) {
			return s, resolver.FieldErrorf(fmt.Sprintf("fallthrough[%d]", i), "%q is not a valid zone name", z)
		}
		s.fallZones = append(s.fallZones, f)
	}
	return s, nil
}

// zones lists the lower-case FQDNs answered: the cluster zone first, then
// the reverse zones, without duplicates.
func (s *settings) zones() []string {
	out := []string{s.zone}
	for _, rz := range s.reverse {
		if !slices.Contains(out, rz.name) {
			out = append(out, rz.name)
		}
	}
	return out
}

// fallsThrough reports whether an NXDOMAIN for name (lower case) is passed
// on instead of answered.
func (s *settings) fallsThrough(name string) bool {
	for _, z := range s.fallZones {
		if inZone(name, z) {
			return true
		}
	}
	return false
}

// isLabel reports whether l is an RFC 1123 label: 1-63 letters, digits and
// inner hyphens.
func isLabel(l string) bool {
	if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// isZoneName reports whether z (fully qualified) is "." or a name of
// hostname-like labels; underscores are allowed for service zones.
func isZoneName(z string) bool {
	if z == "." {
		return true
	}
	if _, ok := dns.IsDomainName(z); !ok || len(z) > 254 {
		return false
	}
	for l := range strings.SplitSeq(strings.TrimSuffix(z, "."), ".") {
		if l == "" || !isLabel(strings.ReplaceAll(l, "_", "a")) {
			return false
		}
	}
	return true
}
