package server

import (
	"context"
	"errors"
	"testing"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver/resolvertest"
)

func TestChaseThroughChain(t *testing.T) {
	up := startStub(t, "example.", "target.example. 300 IN A 192.0.2.7")
	s, _ := startServer(t, testConfig(t, up.Addr, ""), Options{})
	c := chaser{s}

	for i := range 2 {
		m, err := c.Chase(context.Background(), "target.example", dns.TypeA)
		if err != nil {
			t.Fatalf("chase %d: %v", i, err)
		}
		resolvertest.Case{Qname: "target.example.", Qtype: dns.TypeA, Answer: []string{"target.example. * IN A 192.0.2.7"}}.Check(t, m)
	}
	if n := up.Queries.Load(); n != 1 {
		t.Errorf("stub saw %d queries, want 1: chased answers go through the cache", n)
	}
	m, err := c.Chase(context.Background(), "missing.example.", dns.TypeA)
	if err != nil || m.Rcode != dns.RcodeNameError {
		t.Errorf("missing name: %v %v, want NXDOMAIN", m, err)
	}

	up.Down.Store(true)
	m, err = c.Chase(context.Background(), "down.example.", dns.TypeA)
	if err != nil || m.Rcode != dns.RcodeServerFailure || len(m.Question) != 1 {
		t.Errorf("upstream down: %v %v, want a SERVFAIL reply", m, err)
	}

	deep := context.WithValue(context.Background(), chaseDepthKey{}, maxChaseDepth)
	if _, err := c.Chase(deep, "target.example.", dns.TypeA); !errors.Is(err, ErrChaseDepth) {
		t.Errorf("too deep: %v, want ErrChaseDepth", err)
	}
}
