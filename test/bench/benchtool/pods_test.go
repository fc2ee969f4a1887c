package main

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Endpoints cover every index exactly once, in order, over all Services.
func TestServiceForSpreadsEndpoints(t *testing.T) {
	for _, tc := range []struct{ nsvc, neps int }{{1, 0}, {3, 10}, {200, 2000}, {7, 3}} {
		next := 0
		for i := range tc.nsvc {
			j := serviceFor(i, tc.nsvc, tc.neps)
			if j.first != next {
				t.Fatalf("%+v: service %d starts at %d, want %d", tc, i, j.first, next)
			}
			next += j.count
		}
		if next != tc.neps {
			t.Errorf("%+v: %d endpoints, want %d", tc, next, tc.neps)
		}
	}
}

// Pod addresses are unique and collide with no other range the harness
// uses; each Pod lives in its Service's namespace.
func TestPodForAddresses(t *testing.T) {
	const nsvc = 250
	last := podFor(maxPods-1, nsvc).ip
	if !netip.MustParsePrefix("10.112.0.0/13").Contains(last) {
		t.Errorf("last pod address %s leaves 10.112.0.0/13", last)
	}
	seen := map[netip.Addr]bool{}
	for j := range 1000 {
		p := podFor(j, nsvc)
		if seen[p.ip] {
			t.Fatalf("pod %d: address %s reused", j, p.ip)
		}
		seen[p.ip] = true
		svc := serviceFor(j%nsvc, nsvc, 0)
		if p.ns != svc.ns || p.service != svc.name {
			t.Errorf("pod %d in %s of %s, want %s of %s", j, p.ns, p.service, svc.ns, svc.name)
		}
	}
	for _, other := range []string{"10.96.0.0/12", "10.128.0.0/9", "10.64.0.0/15"} {
		if netip.MustParsePrefix(other).Contains(podBase) || netip.MustParsePrefix(other).Contains(last) {
			t.Errorf("pod range overlaps %s", other)
		}
	}
	if got := podName(netip.MustParseAddr("10.112.1.2"), "bench-001", "cluster.local"); got != "10-112-1-2.bench-001.pod.cluster.local." {
		t.Errorf("podName = %q", got)
	}
}

func TestSpread(t *testing.T) {
	v := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	if got := fmt.Sprint(spread(v, 3)); got != "[0 3 6]" {
		t.Errorf("spread(10, 3) = %s", got)
	}
	if got := len(spread(v, 20)); got != 10 {
		t.Errorf("spread(10, 20) has %d", got)
	}
}

func TestCheckLines(t *testing.T) {
	svcs := []corev1.Service{
		{ObjectMeta: metav1.ObjectMeta{Name: "s0", Namespace: "bench-000"}, Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone}},
		{ObjectMeta: metav1.ObjectMeta{Name: "s1", Namespace: "bench-000"}, Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.11"}},
	}
	if got := checkLines(svcs, nil, "cluster.local"); strings.Join(got, "|") != "s1.bench-000.svc.cluster.local. A 10.96.0.11" {
		t.Errorf("without pods: %q", got)
	}
	var pods []podIP
	for j := range 300 {
		p := podFor(j, 150) // two namespaces
		pods = append(pods, podIP{p.ns, p.ip})
	}
	got := checkLines(svcs, pods, "cluster.local")
	if len(got) != 1+20+2 {
		t.Fatalf("%d lines, want 23: %q", len(got), got)
	}
	for _, l := range got {
		if _, err := parseCheckLine(l); err != nil {
			t.Error(err)
		}
	}
	for _, want := range []string{
		"10-112-0-0.bench-000.pod.cluster.local. A 10.112.0.0",
		"10-112-0-150.bench-001.pod.cluster.local. A NXDOMAIN", // a bench-000 pod's address under bench-001
		"10-119-255-255.bench-000.pod.cluster.local. A NXDOMAIN",
	} {
		if !strings.Contains(strings.Join(got, "\n"), want) {
			t.Errorf("lines lack %q: %q", want, got)
		}
	}
}

func TestParseCheckLine(t *testing.T) {
	reply := func(rcode int, addrs ...string) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion("x.", dns.TypeA)
		m.Rcode = rcode
		for _, a := range addrs {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: "x.", Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.ParseIP(a)})
		}
		return m
	}
	for _, tc := range []struct {
		line  string
		reply *dns.Msg
		ok    bool
	}{
		{"x A 10.0.0.2,10.0.0.1", reply(dns.RcodeSuccess, "10.0.0.1", "10.0.0.2"), true},
		{"x A 10.0.0.1", reply(dns.RcodeSuccess, "10.0.0.1", "10.0.0.2"), false},
		{"x A 10.0.0.1", reply(dns.RcodeNameError), false},
		{"x A 10.0.0.1", reply(dns.RcodeSuccess), false},
		{"x A NXDOMAIN", reply(dns.RcodeNameError), true},
		{"x A NXDOMAIN", reply(dns.RcodeSuccess), false},
	} {
		c, err := parseCheckLine(tc.line)
		if err != nil {
			t.Fatalf("%q: %v", tc.line, err)
		}
		if got := c.check(tc.reply); got != tc.ok {
			t.Errorf("%q against %s: %v, want %v", tc.line, describe(tc.reply), got, tc.ok)
		}
	}
	for _, bad := range []string{"x A", "x AAAA 10.0.0.1", "x A fd00::1", "x A nope"} {
		if _, err := parseCheckLine(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
