package integration

import (
	"context"
	"net"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver/resolvertest"
)

// digPath returns dig's path or skips t.
func digPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("dig")
	if err != nil {
		t.Skip("dig not installed (test/tools/install.sh installs dnsutils): dig checks skipped")
	}
	return p
}

// dig runs dig against the clusterdns at addr (never anything else: the
// server is always given) and returns its output.
func dig(t *testing.T, addr string, args ...string) string {
	t.Helper()
	bin := digPath(t)
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	full := append([]string{"@" + host, "-p", port, "+time=2", "+tries=1"}, args...)
	out, err := exec.CommandContext(ctx, bin, full...).CombinedOutput()
	if err != nil {
		t.Fatalf("dig %s: %v\n%s", strings.Join(full, " "), err, out)
	}
	return string(out)
}

var (
	digStatus = regexp.MustCompile(`status: ([A-Z]+),`)
	digFlags  = regexp.MustCompile(`;; flags:([a-z ]*);`)
)

// parseDig turns dig's default output back into a message: rcode from the
// status, AA and TC from the flags, the records of the answer, authority and
// additional sections (the OPT pseudo-section is a comment and is skipped).
func parseDig(t *testing.T, out string) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	st := digStatus.FindStringSubmatch(out)
	fl := digFlags.FindStringSubmatch(out)
	if st == nil || fl == nil {
		t.Fatalf("dig output has no header:\n%s", out)
	}
	rcode, ok := dns.StringToRcode[st[1]]
	if !ok {
		t.Fatalf("dig status %q unknown", st[1])
	}
	m.Rcode = rcode
	flags := strings.Fields(fl[1])
	m.Authoritative, m.Truncated = slices.Contains(flags, "aa"), slices.Contains(flags, "tc")
	var section *[]dns.RR
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		switch {
		case line == ";; ANSWER SECTION:":
			section = &m.Answer
		case line == ";; AUTHORITY SECTION:":
			section = &m.Ns
		case line == ";; ADDITIONAL SECTION:":
			section = &m.Extra
		case line == "" || strings.HasPrefix(line, ";"):
			if line == "" {
				section = nil
			}
		case section != nil:
			rr, err := dns.NewRR(line)
			if err != nil {
				t.Fatalf("dig record %q: %v", line, err)
			}
			*section = append(*section, rr)
		}
	}
	return m
}

// digRecords asks dig a few of TestRecords' questions over UDP and TCP and
// compares what dig printed with the same expectations as the Go client's.
func digRecords(t *testing.T, addr string, w *world) {
	digPath(t)
	all := w.cases()
	pick := func(qname string, qtype uint16) resolvertest.Case {
		for _, c := range all {
			if c.Qname == qname && c.Qtype == qtype {
				return c
			}
		}
		t.Fatalf("no case %s %s", qname, dns.TypeToString[qtype])
		return resolvertest.Case{}
	}
	rev, _ := dns.ReverseAddr(web1)
	cases := []resolvertest.Case{
		pick(svcName("web", w.a), dns.TypeA),
		pick(svcName("dual", w.a), dns.TypeAAAA),
		pick("_http._tcp."+svcName("head", w.a), dns.TypeSRV),
		pick("nosuch."+w.a+".svc.cluster.local.", dns.TypeA),
		pick(svcName("web", w.a), dns.TypeAAAA),
		pick(rev, dns.TypePTR),
		pick(svcName("ext", w.a), dns.TypeA),
		pick(svcName("ext-in", w.a), dns.TypeA),
	}
	for _, transport := range []string{"+notcp", "+tcp"} {
		for _, c := range cases {
			out := dig(t, addr, transport, c.Qname, dns.TypeToString[c.Qtype])
			got := parseDig(t, out)
			c.Name = "dig " + transport + " " + label(c)
			withSerial(c, got).Check(t, got)
			if t.Failed() {
				t.Logf("dig output:\n%s", out)
				return
			}
		}
	}
	short := strings.Fields(dig(t, addr, "+short", svcName("head", w.a), "A"))
	slices.Sort(short)
	if want := []string{head0V4, head1V4}; !slices.Equal(short, want) {
		t.Errorf("dig +short head A: %v, want %v", short, want)
	}
	t.Logf("dig agreed on %d questions over UDP and TCP", len(cases))
}
