package kubeindex

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver"
	"github.com/clusterdns/clusterdns/resolver/resolvertest"
)

var _ resolver.InlineHandler = (*Handler)(nil)

// packWriter packs each reply as it is written and keeps only the bytes, as
// the front end does: a handler may recycle a message once WriteMsg returns.
type packWriter struct {
	resolver.Recorder // addresses of a loopback UDP client
	buf               []byte
	out               []byte // the last reply, packed
	writes            int
}

func newPackWriter() *packWriter {
	return &packWriter{Recorder: *resolver.NewRecorder(nil), buf: make([]byte, 0, 65535)}
}

func (w *packWriter) WriteMsg(m *dns.Msg) error {
	w.writes++
	b, err := m.PackBuffer(w.buf)
	if err != nil {
		return err
	}
	w.out = append(w.out[:0], b...)
	return nil
}

// inlineConfigs are the option sets the inline comparison runs under.
func inlineConfigs() map[string]func() (Config, *fakeIndex) {
	with := func(f func(*Config)) func() (Config, *fakeIndex) {
		return func() (Config, *fakeIndex) {
			c := handlerConfig()
			f(&c)
			return c, fixture()
		}
	}
	return map[string]func() (Config, *fakeIndex){
		"default":       with(func(*Config) {}),
		"pods-insecure": with(func(c *Config) { c.Pods = PodsInsecure }),
		"pods-verified": with(func(c *Config) { c.Pods = PodsVerified }),
		"fallthrough":   with(func(c *Config) { c.Fallthrough = []string{"default.svc.cluster.local"} }),
		"fallthrough-all": with(func(c *Config) {
			c.Fallthrough = []string{"."}
		}),
		"reverse-cidr": with(func(c *Config) { c.ReverseZones = []string{"10.96.0.0/12", "fd00::/64"} }),
		"ignore-empty": with(func(c *Config) { c.IgnoreEmptyService = true }),
		"unsynced": func() (Config, *fakeIndex) {
			idx := fixture()
			idx.synced.Store(false)
			return handlerConfig(), idx
		},
	}
}

// inlineQueries are the queries of the handler tests, plus pod names and
// zone transfers.
func inlineQueries() []*dns.Msg {
	var qs []*dns.Msg
	for _, c := range append(specRows(), externalCases()...) {
		qs = append(qs, c.Msg())
	}
	for _, name := range []string{
		"10-244-0-5.default.pod.cluster.local.", "fd00-244--5.default.pod.cluster.local.",
		"10-9-9-9.default.pod.cluster.local.", "10-244-0-5.kube-system.pod.cluster.local.",
		"default.pod.cluster.local.", "WeB.DeFault.SVC.Cluster.LOCAL.", "10.0.96.10.IN-ADDR.arpa.",
	} {
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeTXT} {
			qs = append(qs, resolvertest.Query(name, qt))
		}
	}
	qs = append(qs, resolvertest.Query("cluster.local.", dns.TypeAXFR), resolvertest.Query("cluster.local.", dns.TypeIXFR))
	ch := resolvertest.Query(web, dns.TypeA)
	ch.Question[0].Qclass = dns.ClassCHAOS
	return append(qs, ch)
}

// TestInlineMatchesServeDNS: for every query of the handler tests, under
// each option set, ServeInline either writes exactly the bytes ServeDNS
// writes and returns the same rcode, without asking next or the Chaser, or
// declines having written and asked nothing. It must serve every answer the
// index gives by itself. All queries run through one handler, so a pooled
// reply that leaked state into the next one would show.
func TestInlineMatchesServeDNS(t *testing.T) {
	ctx := context.Background()
	for name, mk := range inlineConfigs() {
		t.Run(name, func(t *testing.T) {
			cfg, idx := mk()
			hs := newHarness(t, cfg, idx)
			ih := hs.h.(resolver.InlineHandler)
			for _, m := range inlineQueries() {
				label := fmt.Sprintf("%s %s", m.Question[0].Name, dns.TypeToString[m.Question[0].Qtype])
				next, chased := hs.next.calls.Load(), hs.chaser.calls.Load()
				iw := newPackWriter()
				served, irc, ierr := ih.ServeInline(ctx, iw, m)
				if hs.next.calls.Load() != next || hs.chaser.calls.Load() != chased {
					t.Errorf("%s: ServeInline asked next or the Chaser", label)
				}
				dw := newPackWriter()
				drc, derr := hs.h.ServeDNS(ctx, dw, m)
				passed := hs.next.calls.Load() != next
				if !served {
					if iw.writes != 0 {
						t.Errorf("%s: declined inline after writing", label)
					}
					if wantInline(idx, m, dw, drc, passed) {
						t.Errorf("%s: declined inline, but the index answers it (%s)", label, dns.RcodeToString[drc])
					}
					continue
				}
				if irc != drc || (ierr == nil) != (derr == nil) || iw.writes != 1 || dw.writes != 1 {
					t.Errorf("%s: inline rcode %d err %v writes %d, ServeDNS rcode %d err %v writes %d",
						label, irc, ierr, iw.writes, drc, derr, dw.writes)
				}
				if !bytes.Equal(iw.out, dw.out) {
					t.Errorf("%s: inline reply differs from ServeDNS's:\n%x\n%x", label, iw.out, dw.out)
				}
			}
		})
	}
}

// wantInline reports whether the index answered m by itself through ServeDNS
// (a written reply, not passed on, not an ExternalName target it chased).
func wantInline(idx *fakeIndex, m *dns.Msg, w *packWriter, rcode int, passed bool) bool {
	qt := m.Question[0].Qtype
	if !idx.Synced() || passed || !resolver.ClientWrote(rcode) || w.writes == 0 || qt == dns.TypeAXFR || qt == dns.TypeIXFR {
		return false
	}
	var got dns.Msg
	if err := got.Unpack(w.out); err != nil {
		return false
	}
	for _, rr := range got.Answer {
		if rr.Header().Rrtype == dns.TypeCNAME && qt != dns.TypeCNAME && qt != dns.TypeANY {
			return false
		}
	}
	return true
}

// TestInlineConcurrent: readers on several goroutines answering inline at
// once each get their own reply (the pooled scratch is never shared).
func TestInlineConcurrent(t *testing.T) {
	hs := newHarness(t, handlerConfig(), fixture())
	ih := hs.h.(resolver.InlineHandler)
	qs := []*dns.Msg{
		resolvertest.Query(web, dns.TypeA), resolvertest.Query(db, dns.TypeAAAA),
		resolvertest.Query("_mysql._tcp."+db, dns.TypeSRV), resolvertest.Query(rev("10.1.0.1"), dns.TypePTR),
		resolvertest.Query("nope."+web, dns.TypeA), resolvertest.Query(dual, dns.TypeA),
	}
	want := make([][]byte, len(qs))
	for i, m := range qs {
		w := newPackWriter()
		if _, err := hs.h.ServeDNS(context.Background(), w, m); err != nil {
			t.Fatal(err)
		}
		want[i] = w.out
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Go(func() {
			w := newPackWriter()
			for n := range 500 {
				i := (g + n) % len(qs)
				if served, _, err := ih.ServeInline(context.Background(), w, qs[i]); !served || err != nil {
					errs <- fmt.Errorf("%s: served %v err %v", qs[i].Question[0].Name, served, err)
					return
				}
				if !bytes.Equal(w.out, want[i]) {
					errs <- fmt.Errorf("%s: reply differs under concurrency", qs[i].Question[0].Name)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// discardWriter packs into a fixed buffer, as the front end does, and
// allocates nothing, so allocation counts are the handler's.
type discardWriter struct {
	resolver.Recorder
	buf [4096]byte
}

func (w *discardWriter) WriteMsg(m *dns.Msg) error {
	_, err := m.PackBuffer(w.buf[:])
	return err
}

func BenchmarkClusterInline(b *testing.B) {
	hs := newHarness(b, handlerConfig(), fixture())
	ih := hs.h.(resolver.InlineHandler)
	ctx := context.Background()
	for _, q := range benchQueries {
		b.Run(q.name, func(b *testing.B) {
			m := resolvertest.Query(q.qname, q.qtype)
			w := &discardWriter{Recorder: *resolver.NewRecorder(nil)}
			b.ReportAllocs()
			for b.Loop() {
				if served, rcode, _ := ih.ServeInline(ctx, w, m); !served || rcode != q.rcode {
					b.Fatalf("served %v rcode %s", served, dns.RcodeToString[rcode])
				}
			}
		})
	}
}
