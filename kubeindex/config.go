package kubeindex

import (
	"time"

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

// Validate reports the first invalid field.
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
	return nil
}
