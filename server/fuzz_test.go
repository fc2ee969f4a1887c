package server

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/clusterdns/clusterdns/kubeindex/clientsetapi"
)

// FuzzChain sends raw packets through the whole server: the real front end
// (ServePacket: the socket reader's path with the socket replaced), the
// cache, kubeindex over a fake clientset with services, slices and pods,
// and forward to a stub on 127.0.0.1. Whatever the bytes: no panic (the
// front end would turn one into SERVFAIL, so its log line is watched), each
// packet ends within a bound, and every reply unpacks, carries the query's
// ID and QR, fits the client's size and echoes its question.
func FuzzChain(f *testing.F) {
	h := newChainHarness(f)
	f.Fuzz(func(t *testing.T, pkt []byte, tcp bool) { h.check(t, pkt, tcp) })
}

// FuzzParseConfig: any bytes decode to a config or an error that places
// itself in the file, and never panic or hang.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(base))
	f.Add(DefaultYAML())
	f.Fuzz(func(t *testing.T, data []byte) {
		const name = "fuzz.yaml"
		cfg, err := ParseConfig(name, data)
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) && !strings.Contains(err.Error(), name) {
				t.Fatalf("error neither a *ConfigError nor naming the file: %v", err)
			}
			if cfg != nil {
				t.Fatalf("config %+v returned with error %v", cfg, err)
			}
			return
		}
		if cfg == nil || len(cfg.ListenAddrs()) == 0 || len(cfg.Upstreams()) == 0 || cfg.Name() != name {
			t.Fatalf("accepted an incomplete config: %+v", cfg)
		}
	})
}

// chainHarness is a started server for FuzzChain.
type chainHarness struct {
	s      *Server
	panics atomic.Int64
}

func newChainHarness(t testing.TB) *chainHarness {
	h := &chainHarness{}
	up := startStub(t, "example.",
		"www.example. 300 IN A 192.0.2.1",
		"www.example. 300 IN AAAA 2001:db8::1",
		"alias.example. 300 IN CNAME www.example.",
		"big.example. 300 IN TXT \""+strings.Repeat("x", 250)+"\" \""+strings.Repeat("y", 250)+"\"",
	)
	cfg := testConfigHTTP(t, up.Addr, `{metrics: "", health: "", ready: ""}`, `  loopCheck: 0s
limits: {queryTimeout: 1s}
kubernetes:
  pods: verified
  transfer: {allow: ["127.0.0.0/8"]}
  reverseZones: ["in-addr.arpa.", "ip6.arpa."]
`)
	log := slog.New(panicSpy{&h.panics})
	h.s, _ = startServer(t, cfg, Options{Logger: log, KubeClient: clientsetapi.New(fake.NewClientset(fuzzObjects()...))})
	return h
}

func (h *chainHarness) check(t *testing.T, pkt []byte, tcp bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	before := h.panics.Load()
	replies, err := h.s.front.ServePacket(ctx, pkt, netip.MustParseAddrPort("127.0.0.1:53000"), tcp)
	if err != nil {
		t.Fatalf("not over within 10s: %v", err)
	}
	if h.panics.Load() != before {
		t.Fatal("a panic was recovered while answering")
	}
	if len(pkt) < 12 || pkt[2]&0x80 != 0 {
		if len(replies) != 0 {
			t.Fatalf("answered a short packet or a response: % x", replies[0])
		}
		return
	}
	if !tcp && len(replies) > 1 {
		t.Fatalf("%d replies over UDP", len(replies))
	}
	req := new(dns.Msg)
	reqErr := req.Unpack(pkt)
	limit := dns.MaxMsgSize
	if !tcp {
		limit = dns.MinMsgSize
		if o := req.IsEdns0(); reqErr == nil && o != nil && int(o.UDPSize()) > limit {
			limit = min(int(o.UDPSize()), 4096) // the front end's cap against amplification
		}
	}
	id := binary.BigEndian.Uint16(pkt)
	for _, b := range replies {
		m := new(dns.Msg)
		if err := m.Unpack(b); err != nil {
			t.Fatalf("reply does not unpack: %v\n% x", err, b)
		}
		if m.Id != id || !m.Response {
			t.Fatalf("reply ID %d QR %v, want ID %d and QR", m.Id, m.Response, id)
		}
		if len(b) > limit {
			t.Fatalf("reply of %d bytes, the client takes %d", len(b), limit)
		}
		if reqErr != nil {
			if len(b) != 12 || m.Rcode != dns.RcodeFormatError {
				t.Fatalf("query does not unpack (%v) but got %d bytes %s", reqErr, len(b), dns.RcodeToString[m.Rcode])
			}
			continue
		}
		if len(m.Question) > 1 {
			t.Fatalf("reply with %d questions", len(m.Question))
		}
		if len(m.Question) == 1 && len(req.Question) == 1 {
			q, a := req.Question[0], m.Question[0]
			if !strings.EqualFold(q.Name, a.Name) || q.Qtype != a.Qtype || q.Qclass != a.Qclass {
				t.Fatalf("reply question %v, query %v", a, q)
			}
		}
	}
}

// panicSpy counts the front end's "panic" error lines and discards the
// rest.
type panicSpy struct{ n *atomic.Int64 }

func (p panicSpy) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (p panicSpy) WithAttrs([]slog.Attr) slog.Handler           { return p }
func (p panicSpy) WithGroup(string) slog.Handler                { return p }
func (p panicSpy) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "panic") {
		p.n.Add(1)
	}
	return nil
}

// fuzzObjects is a small cluster with every kind of answer, plus an
// endpoint address and a hostname the index skips.
func fuzzObjects() []runtime.Object {
	port := func(name string, p int32, proto corev1.Protocol) discoveryv1.EndpointPort {
		return discoveryv1.EndpointPort{Name: &name, Port: &p, Protocol: &proto}
	}
	host := func(s string) *string { return &s }
	svc := func(name string, spec corev1.ServiceSpec) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Spec: spec}
	}
	slice := func(name, service string, family discoveryv1.AddressType, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: service}},
			AddressType: family,
			Ports:       []discoveryv1.EndpointPort{port("http", 8080, corev1.ProtocolTCP), port("dns", 53, corev1.ProtocolUDP)},
			Endpoints:   eps,
		}
	}
	tcp := []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}, {Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}}
	return []runtime.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kube-system"}},
		svc("web", corev1.ServiceSpec{ClusterIP: "10.0.0.10", ClusterIPs: []string{"10.0.0.10", "fd00::10"}, Ports: tcp}),
		slice("web-a", "web", discoveryv1.AddressTypeIPv4, discoveryv1.Endpoint{Addresses: []string{"10.1.0.1"}}),
		svc("db", corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Ports: tcp}),
		slice("db-a", "db", discoveryv1.AddressTypeIPv4,
			discoveryv1.Endpoint{Addresses: []string{"10.1.1.1"}, Hostname: host("db-0")},
			discoveryv1.Endpoint{Addresses: []string{"10.1.1.2"}, Hostname: host("db-1")},
			discoveryv1.Endpoint{Addresses: []string{"10.1.1.3", "not-an-ip"}},
			discoveryv1.Endpoint{Addresses: []string{"10.1.1.4"}, Hostname: host("Not_A.Label")}),
		slice("db-b", "db", discoveryv1.AddressTypeIPv6, discoveryv1.Endpoint{Addresses: []string{"fd00:1::1"}, Hostname: host("db-0")}),
		svc("ext", corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "alias.example"}),
		svc("extin", corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "web.default.svc.cluster.local"}),
		svc("loop", corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "loop.default.svc.cluster.local"}),
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kube-dns", Namespace: "kube-system"},
			Spec: corev1.ServiceSpec{ClusterIP: "10.0.0.53", ClusterIPs: []string{"10.0.0.53"}, Ports: tcp}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.1.0.1", PodIPs: []corev1.PodIP{{IP: "10.1.0.1"}}}},
	}
}
