package cache

import (
	"time"

	"github.com/clusterdns/clusterdns/resolver"
)

// Config tunes the cache stage. The server decodes YAML onto Default(), so a
// key left out keeps its default and an explicit 0 means 0.
type Config struct {
	// Size is the capacity in entries (positive and negative together).
	Size int `yaml:"size"`
	// MaxTTL caps the TTL of positive answers.
	MaxTTL time.Duration `yaml:"maxTTL"`
	// MaxNegativeTTL caps the TTL of NXDOMAIN/NODATA answers (RFC 2308).
	MaxNegativeTTL time.Duration `yaml:"maxNegativeTTL"`
	// MinTTL is the floor applied to both.
	MinTTL time.Duration `yaml:"minTTL"`
	// ServfailTTL is how long a SERVFAIL is cached; 0 disables it.
	ServfailTTL time.Duration `yaml:"servfailTTL"`
	// Prefetch refreshes popular entries shortly before they expire.
	Prefetch Prefetch `yaml:"prefetch"`
	// ServeStale, when non-zero, answers from expired entries for up to this
	// long past expiry if the rest of the chain fails (RFC 8767).
	ServeStale time.Duration `yaml:"serveStale"`
	// ClusterZone caches answers under the cluster zone too. Off by default:
	// the index is already in memory and cached cluster answers go stale.
	ClusterZone bool `yaml:"clusterZone"`
}

// Prefetch configures refreshing of popular entries.
type Prefetch struct {
	// Amount is how many hits within Window make an entry popular; 0 disables.
	Amount int `yaml:"amount"`
	// Window is the period over which hits are counted.
	Window time.Duration `yaml:"window"`
	// Percentage of the original TTL left at which a popular entry is refreshed.
	Percentage int `yaml:"percentage"`
}

// Default returns the configuration used for keys the file leaves out.
func Default() Config {
	return Config{
		Size:           10000,
		MaxTTL:         3600 * time.Second,
		MaxNegativeTTL: 1800 * time.Second,
		MinTTL:         5 * time.Second,
		ServfailTTL:    5 * time.Second,
		Prefetch:       Prefetch{Amount: 10, Window: time.Minute, Percentage: 10},
	}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Size < 1:
		return resolver.FieldErrorf("size", "must be at least 1, got %d", c.Size)
	case c.MinTTL < 0:
		return resolver.FieldErrorf("minTTL", "must not be negative")
	case c.MaxTTL < c.MinTTL:
		return resolver.FieldErrorf("maxTTL", "must be at least minTTL (%s)", c.MinTTL)
	case c.MaxNegativeTTL < c.MinTTL:
		return resolver.FieldErrorf("maxNegativeTTL", "must be at least minTTL (%s)", c.MinTTL)
	case c.ServfailTTL < 0 || c.ServfailTTL > 5*time.Minute:
		return resolver.FieldErrorf("servfailTTL", "must be between 0 and 5m, got %s", c.ServfailTTL)
	case c.ServeStale < 0:
		return resolver.FieldErrorf("serveStale", "must not be negative")
	case c.Prefetch.Amount < 0:
		return resolver.FieldErrorf("prefetch.amount", "must not be negative")
	case c.Prefetch.Amount > 0 && c.Prefetch.Window <= 0:
		return resolver.FieldErrorf("prefetch.window", "must be positive when prefetch.amount is set")
	case c.Prefetch.Percentage < 1 || c.Prefetch.Percentage > 99:
		return resolver.FieldErrorf("prefetch.percentage", "must be between 1 and 99, got %d", c.Prefetch.Percentage)
	}
	return nil
}
