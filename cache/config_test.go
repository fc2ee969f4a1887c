package cache

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver"
)

func TestNoNext(t *testing.T) {
	c, err := New(Default(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	rcode, err := c.Wrap(nil).ServeDNS(context.Background(), resolver.NewRecorder(nil), q("a.", dns.TypeA))
	if rcode != dns.RcodeServerFailure || !errors.Is(err, resolver.ErrNoNext) {
		t.Errorf("rcode %s err %v, want SERVFAIL and ErrNoNext", dns.RcodeToString[rcode], err)
	}
	if name := c.Wrap(nil).Name(); name != "cache" {
		t.Errorf("Name() = %q", name)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		change func(*Config)
		field  string // "" when valid
	}{
		{func(*Config) {}, ""},
		{func(c *Config) { c.Size = 0 }, "size"},
		{func(c *Config) { c.MinTTL = -time.Second }, "minTTL"},
		{func(c *Config) { c.MaxTTL = time.Second }, "maxTTL"},
		{func(c *Config) { c.MaxNegativeTTL = time.Second }, "maxNegativeTTL"},
		{func(c *Config) { c.ServfailTTL = -1 }, "servfailTTL"},
		{func(c *Config) { c.ServfailTTL = time.Hour }, "servfailTTL"},
		{func(c *Config) { c.ServfailTTL = 0 }, ""},
		{func(c *Config) { c.ServeStale = -time.Second }, "serveStale"},
		{func(c *Config) { c.Prefetch.Amount = -1 }, "prefetch.amount"},
		{func(c *Config) { c.Prefetch.Window = 0 }, "prefetch.window"},
		{func(c *Config) { c.Prefetch.Amount, c.Prefetch.Window = 0, 0 }, ""},
		{func(c *Config) { c.Prefetch.Percentage = 0 }, "prefetch.percentage"},
		{func(c *Config) { c.Prefetch.Percentage = 100 }, "prefetch.percentage"},
	} {
		cfg := Default()
		tc.change(&cfg)
		err := cfg.Validate()
		var fe *resolver.FieldError
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%+v: unexpected error %v", cfg, err)
		case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field):
			t.Errorf("%+v: error %v, want a FieldError for %s", cfg, err, tc.field)
		}
		if _, nerr := New(cfg, Options{}); (nerr == nil) != (tc.field == "") || (nerr != nil && !strings.Contains(nerr.Error(), tc.field)) {
			t.Errorf("New with %+v: %v", cfg, nerr)
		}
	}
}

func TestShards(t *testing.T) {
	for _, tc := range []struct{ size, shards int }{
		{1, 1}, {511, 1}, {512, 2}, {10000, 32}, {1 << 20, 32},
	} {
		caps := capacities(tc.size)
		total := 0
		for _, c := range caps {
			total += c
		}
		if len(caps) != tc.shards || total != tc.size {
			t.Errorf("size %d: %d shards holding %d, want %d holding %d", tc.size, len(caps), total, tc.shards, tc.size)
		}
	}
}
