package server

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver/resolvertest"
)

// reloadFixture is a running server whose config lives in a file.
type reloadFixture struct {
	s        *Server
	logs     *logBuffer
	path     string
	addr     string
	up, corp *stub
}

func configText(up string, extra string) string {
	return fmt.Sprintf(`listen: ["127.0.0.1:0"]
lameduck: 0s
http: {metrics: "127.0.0.1:0", health: "", ready: ""}
forward:
  upstreams: [%q]
  timeout: 300ms
`, up) + extra
}

func newReloadFixture(t *testing.T, opts Options) *reloadFixture {
	t.Helper()
	f := &reloadFixture{
		path: filepath.Join(t.TempDir(), "clusterdns.yaml"),
		up:   startStub(t, "example.", "www.example. 300 IN A 192.0.2.1"),
		corp: startStub(t, "corp.example.", "host.corp.example. 60 IN A 10.1.1.1"),
	}
	f.write(t, configText(f.up.Addr, ""))
	cfg, err := LoadConfig(f.path)
	if err != nil {
		t.Fatal(err)
	}
	opts.ConfigFile = f.path
	if opts.WatchInterval == 0 {
		opts.WatchInterval = -1 // only explicit reloads, unless the test watches
	}
	f.s, f.logs = startServer(t, cfg, opts)
	f.addr = dnsAddr(t, f.s)
	return f
}

func (f *reloadFixture) write(t *testing.T, text string) {
	t.Helper()
	if err := os.WriteFile(f.path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (f *reloadFixture) query(t *testing.T, name string) *dns.Msg {
	t.Helper()
	return resolvertest.Exchange(t, "udp", f.addr, resolvertest.Query(name, dns.TypeA))
}

var (
	wwwCase  = resolvertest.Case{Qname: "www.example.", Qtype: dns.TypeA, Answer: []string{"www.example. * IN A 192.0.2.1"}}
	hostCase = resolvertest.Case{Qname: "host.corp.example.", Qtype: dns.TypeA, Answer: []string{"host.corp.example. * IN A 10.1.1.1"}}
)

func TestReloadBadConfigKeepsOld(t *testing.T) {
	f := newReloadFixture(t, Options{})
	wwwCase.Check(t, f.query(t, "www.example."))

	f.write(t, configText(f.up.Addr, "cache:\n  size: -1\n"))
	err := f.s.ReloadFile()
	want := f.path + ":8: cache.size: must be at least 1, got -1"
	var ce *ConfigError
	if !errors.As(err, &ce) || err.Error() != want {
		t.Fatalf("ReloadFile: %v, want %s", err, want)
	}
	if !strings.Contains(f.logs.String(), "keeping the running one") || !strings.Contains(f.logs.String(), want) {
		t.Errorf("the error is not logged:\n%s", f.logs)
	}
	wwwCase.Check(t, f.query(t, "www.example."))

	f.write(t, "listen: [\n")
	if err := f.s.ReloadFile(); err == nil || !strings.HasPrefix(err.Error(), f.path+":") {
		t.Fatalf("syntax error: %v", err)
	}
	if err := os.Remove(f.path); err != nil {
		t.Fatal(err)
	}
	if err := f.s.ReloadFile(); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	wwwCase.Check(t, f.query(t, "www.example."))
	_, body := httpGet(t, "http://"+f.s.HTTPAddrs()["metrics"].String()+"/metrics")
	if !strings.Contains(body, `clusterdns_reloads_total{result="failure"} 3`) {
		t.Errorf("reload failures not counted:\n%s", grepLines(body, "reloads"))
	}
}

func TestReloadGoodConfigChangesAnswers(t *testing.T) {
	f := newReloadFixture(t, Options{})
	wwwCase.Check(t, f.query(t, "www.example."))
	if r := f.query(t, "before.corp.example."); r.Rcode != dns.RcodeNameError {
		t.Fatalf("before reload, before.corp.example.: %s, want NXDOMAIN from the default stub", dns.RcodeToString[r.Rcode])
	}
	seen := f.up.Queries.Load()

	// A new stub domain: forward is rebuilt, and with it the cache: its
	// entries came from the old upstreams.
	f.write(t, configText(f.up.Addr, "  zones: {\"corp.example.\": [\""+f.corp.Addr+"\"]}\n"))
	if err := f.s.ReloadFile(); err != nil {
		t.Fatal(err)
	}
	hostCase.Check(t, f.query(t, "host.corp.example."))
	wwwCase.Check(t, f.query(t, "www.example."))
	if n := f.up.Queries.Load() - seen; n != 1 {
		t.Errorf("default stub saw %d more queries, want 1: the cache is emptied with a new forward stage", n)
	}
	if !strings.Contains(f.logs.String(), "changed=\"[forward cache]\"") {
		t.Errorf("reload does not log what changed:\n%s", f.logs)
	}
	wwwCase.Check(t, f.query(t, "www.example."))
	if n := f.up.Queries.Load() - seen; n != 1 {
		t.Errorf("default stub saw %d more queries, want the second www from the new cache", n)
	}

	// A new cache config: the cache is rebuilt, empty; forward is kept.
	f.write(t, configText(f.up.Addr, "  zones: {\"corp.example.\": [\""+f.corp.Addr+"\"]}\ncache: {size: 100}\n"))
	if err := f.s.ReloadFile(); err != nil {
		t.Fatal(err)
	}
	wwwCase.Check(t, f.query(t, "www.example."))
	if n := f.up.Queries.Load() - seen; n != 2 {
		t.Errorf("default stub saw %d more queries, want 2 after the cache was rebuilt again", n)
	}
	if !strings.Contains(f.logs.String(), "changed=[cache]") {
		t.Errorf("a cache-only change rebuilds only the cache:\n%s", f.logs)
	}

	// Settings that need a restart are named, not applied.
	f.write(t, strings.Replace(configText(f.up.Addr, "cache: {size: 100}\n"), `listen: ["127.0.0.1:0"]`, `listen: ["127.0.0.1:0", "127.0.0.2:0"]`, 1))
	if err := f.s.ReloadFile(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(f.logs.String(), "need a restart") || !strings.Contains(f.logs.String(), "fields=[listen]") {
		t.Errorf("restart-only change not warned about:\n%s", f.logs)
	}
	if got := len(f.s.DNSAddrs()); got != 1 {
		t.Errorf("%d DNS addresses after a listen change, want the 1 started with", got)
	}
	// the zone is gone again
	if r := f.query(t, "host2.corp.example."); r.Rcode != dns.RcodeNameError || f.corp.Queries.Load() != 1 {
		t.Errorf("after removing the zone: %s, corp stub saw %d", dns.RcodeToString[r.Rcode], f.corp.Queries.Load())
	}
}

func TestReloadOnFileChange(t *testing.T) {
	f := newReloadFixture(t, Options{WatchInterval: 50 * time.Millisecond})
	if r := f.query(t, "host.corp.example."); r.Rcode != dns.RcodeNameError {
		t.Fatalf("before: %s", dns.RcodeToString[r.Rcode])
	}
	f.write(t, configText(f.up.Addr, "  zones: {\"corp.example.\": [\""+f.corp.Addr+"\"]}\ncache: {enabled: false}\n"))
	eventually(t, "the new stub domain after a file change", func() bool {
		r := f.query(t, "host.corp.example.")
		return r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1
	})
	// A bad file is logged once and the running config stays.
	f.write(t, configText(f.up.Addr, "bogus: 1\n"))
	eventually(t, "the bad file logged", func() bool {
		return strings.Contains(f.logs.String(), f.path+":7: bogus: unknown field")
	})
	hostCase.Check(t, f.query(t, "host.corp.example."))
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestReloadLogLevel(t *testing.T) {
	lv := new(slog.LevelVar)
	f := newReloadFixture(t, Options{LogLevel: lv})
	f.write(t, configText(f.up.Addr, "log: {level: debug}\n"))
	if err := f.s.ReloadFile(); err != nil {
		t.Fatal(err)
	}
	if lv.Level() != slog.LevelDebug {
		t.Errorf("level %s after reload, want DEBUG", lv.Level())
	}
	if !strings.Contains(f.logs.String(), "changed=[log.level]") {
		t.Errorf("level change not logged:\n%s", f.logs)
	}
	// the same file again: nothing changed, nothing rebuilt
	if err := f.s.ReloadFile(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(f.logs.String(), "nothing changed") {
		t.Errorf("no-op reload not logged:\n%s", f.logs)
	}
}
