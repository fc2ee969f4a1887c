package forward

import (
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/clusterdns/clusterdns/resolver"
)

// Config tunes the forward stage. The server decodes YAML onto Default().
type Config struct {
	// Upstreams are "host:port" (port defaults to 53; IPv6 as "[::1]:53") or
	// paths of resolv.conf files whose nameservers are used.
	Upstreams []string `yaml:"upstreams"`
	// Zones maps a zone (stub domain) to its own upstreams, in the same form.
	// The most specific zone containing the query name wins.
	Zones map[string][]string `yaml:"zones"`
	// Policy picks the order upstreams are tried in: random, round_robin or
	// sequential.
	Policy string `yaml:"policy"`
	// MaxConcurrent bounds upstream queries in flight; past it queries are
	// REFUSED and counted.
	MaxConcurrent int `yaml:"maxConcurrent"`
	// MaxFails consecutive failures mark an upstream down until a background
	// probe succeeds.
	MaxFails int `yaml:"maxFails"`
	// HealthCheck is the probe interval for an upstream marked down.
	HealthCheck time.Duration `yaml:"healthCheck"`
	// Timeout bounds one attempt against one upstream.
	Timeout time.Duration `yaml:"timeout"`
	// Expire closes pooled upstream sockets older than this, so source ports
	// rotate (spoofing resistance) and dead connections are not kept.
	Expire time.Duration `yaml:"expire"`
	// ForceTCP sends every upstream query over TCP.
	ForceTCP bool `yaml:"forceTCP"`
	// LoopCheck is the interval of forwarding-loop probes (see CheckLoops);
	// 0 turns loop detection off.
	LoopCheck time.Duration `yaml:"loopCheck"`
}

// Policies accepted in Config.Policy.
const (
	PolicyRandom     = "random"
	PolicyRoundRobin = "round_robin"
	PolicySequential = "sequential"
)

// Default returns the configuration used for keys the file leaves out.
func Default() Config {
	return Config{
		Upstreams:     []string{"/etc/resolv.conf"},
		Policy:        PolicyRandom,
		MaxConcurrent: 1000,
		MaxFails:      2,
		HealthCheck:   500 * time.Millisecond,
		Timeout:       2 * time.Second,
		Expire:        10 * time.Second,
		LoopCheck:     30 * time.Second,
	}
}

// Validate checks the shape of every field, including IP upstream entries
// and zone names; it does not read resolv.conf files (New does).
func (c Config) Validate() error {
	if len(c.Upstreams) == 0 {
		return resolver.FieldErrorf("upstreams", "at least one upstream is required")
	}
	switch c.Policy {
	case PolicyRandom, PolicyRoundRobin, PolicySequential:
	default:
		return resolver.FieldErrorf("policy", "must be random, round_robin or sequential, got %q", c.Policy)
	}
	switch {
	case c.MaxConcurrent < 1:
		return resolver.FieldErrorf("maxConcurrent", "must be at least 1, got %d", c.MaxConcurrent)
	case c.MaxFails < 0:
		return resolver.FieldErrorf("maxFails", "must not be negative")
	case c.HealthCheck <= 0:
		return resolver.FieldErrorf("healthCheck", "must be positive")
	case c.Timeout <= 0:
		return resolver.FieldErrorf("timeout", "must be positive")
	case c.Expire <= 0:
		return resolver.FieldErrorf("expire", "must be positive")
	case c.LoopCheck < 0:
		return resolver.FieldErrorf("loopCheck", "must not be negative (0 turns loop detection off)")
	}
	if err := checkLiterals(c.Upstreams); err != nil {
		return resolver.Prefix("upstreams", err)
	}
	seen := make(map[string]string, len(c.Zones))
	for _, key := range slices.Sorted(maps.Keys(c.Zones)) {
		field := "zones." + key
		z, err := normalizeZone(key)
		if err != nil {
			return resolver.FieldErrorf(field, "%w", err)
		}
		if other, dup := seen[z]; dup {
			return resolver.FieldErrorf(field, "same zone as %q", other)
		}
		seen[z] = key
		if len(c.Zones[key]) == 0 {
			return resolver.FieldErrorf(field, "at least one upstream is required")
		}
		if err := checkLiterals(c.Zones[key]); err != nil {
			return resolver.Prefix(field, err)
		}
	}
	return nil
}

// checkLiterals parses the IP entries of an upstream list; resolv.conf paths
// are read by New, not here.
func checkLiterals(list []string) error {
	for i, s := range list {
		if isPath(s) {
			continue
		}
		if _, err := parseAddrPort(s); err != nil {
			return &resolver.FieldError{Field: "[" + strconv.Itoa(i) + "]", Err: err}
		}
	}
	return nil
}
