package resolver_test

import (
	"context"
	"errors"
	"testing"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver"
)

func TestCompileOrder(t *testing.T) {
	var order []string
	stage := func(name string) resolver.Stage {
		return func(next resolver.Handler) resolver.Handler {
			return resolver.HandlerFunc{N: name, F: func(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
				order = append(order, name)
				return resolver.NextOrFailure(ctx, name, next, w, r)
			}}
		}
	}
	h := resolver.Compile(nil, stage("cache"), stage("kubeindex"), stage("forward"))
	rcode, err := h.ServeDNS(context.Background(), resolver.NewRecorder(nil), new(dns.Msg))
	if rcode != dns.RcodeServerFailure || !errors.Is(err, resolver.ErrNoNext) {
		t.Fatalf("end of chain: rcode %d err %v, want SERVFAIL and ErrNoNext", rcode, err)
	}
	if got := len(order); got != 3 || order[0] != "cache" || order[2] != "forward" {
		t.Fatalf("order %v, want [cache kubeindex forward]", order)
	}
}

func TestClientWrote(t *testing.T) {
	for rcode, want := range map[int]bool{
		dns.RcodeSuccess: true, dns.RcodeNameError: true,
		dns.RcodeServerFailure: false, dns.RcodeRefused: false,
		dns.RcodeFormatError: false, dns.RcodeNotImplemented: false,
	} {
		if got := resolver.ClientWrote(rcode); got != want {
			t.Errorf("ClientWrote(%s) = %v, want %v", dns.RcodeToString[rcode], got, want)
		}
	}
}

func TestReplySize(t *testing.T) {
	m := new(dns.Msg)
	m.SetQuestion("a.", dns.TypeA)
	w := resolver.NewRecorder(nil)
	if got := resolver.ReplySize(w, m); got != 512 {
		t.Fatalf("no EDNS: %d, want 512", got)
	}
	m.SetEdns0(1232, false)
	if got := resolver.ReplySize(w, m); got != 1232 {
		t.Fatalf("EDNS 1232: %d, want 1232", got)
	}
	m.IsEdns0().SetUDPSize(100)
	if got := resolver.ReplySize(w, m); got != 512 {
		t.Fatalf("EDNS 100: %d, want 512 floor", got)
	}
}

func TestFieldErrorPrefix(t *testing.T) {
	err := resolver.Prefix("forward", resolver.Prefix("zones", resolver.FieldErrorf("[0]", "bad")))
	var fe *resolver.FieldError
	if !errors.As(err, &fe) || fe.Field != "forward.zones[0]" {
		t.Fatalf("got %v, want field forward.zones[0]", err)
	}
}
