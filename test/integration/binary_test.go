package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/clusterdns/clusterdns/resolver/resolvertest"
	"github.com/clusterdns/clusterdns/test/cluster"
)

// buildBinary builds cmd/clusterdns into t's temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go tool not found: %v", err)
	}
	out := filepath.Join(t.TempDir(), "clusterdns")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", out, "./cmd/clusterdns")
	cmd.Dir = repoRoot(t)
	began := time.Now()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/clusterdns: %v\n%s", err, b)
	}
	t.Logf("FIGURE go build ./cmd/clusterdns: %v", time.Since(began).Round(time.Millisecond))
	return out
}

// proc is a clusterdns process.
type proc struct {
	cmd    *exec.Cmd
	out    *logBuffer // stdout and stderr
	exited chan struct{}
}

// startProc runs bin with args and stops it (SIGTERM, bounded) when t ends.
func startProc(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), out: &logBuffer{}, exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("clusterdns %s output (last 40 lines):\n%s", strings.Join(args, " "), p.out.Tail(40))
		}
	})
	return p
}

// stop sends SIGTERM, waits up to 20 s (then kills) and returns the exit
// code and how long the exit took.
func (p *proc) stop(t *testing.T) (int, time.Duration) {
	t.Helper()
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode(), 0
	default:
	}
	began := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		t.Errorf("clusterdns still running 20 s after SIGTERM: killed")
	}
	return p.cmd.ProcessState.ExitCode(), time.Since(began)
}

// startedLine is the JSON log line the server writes once it serves.
type startedLine struct {
	Msg  string            `json:"msg"`
	DNS  []string          `json:"dns"`
	HTTP map[string]string `json:"http"`
}

// waitStarted waits for the "clusterdns started" line of a JSON-logging
// process and returns it.
func (p *proc) waitStarted(t *testing.T, bound time.Duration) startedLine {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		for line := range strings.Lines(p.out.String()) {
			var l startedLine
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "clusterdns started" && len(l.DNS) > 0 {
				return l
			}
		}
		select {
		case <-p.exited:
			t.Fatalf("clusterdns exited (%s) before it started serving", p.cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no \"clusterdns started\" line after %v", bound)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePort returns a port free for both UDP and TCP on 127.0.0.1 a moment
// ago (the caller retries if someone takes it in between).
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		pc.Close()
		if err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatal("no port free for both UDP and TCP")
	return 0
}

// TestBinary runs the built command: -check-config on every config shipped
// in deploy/, a server from a config file (with a SIGHUP reload and a clean
// SIGTERM exit), and the out-of-cluster use with -kubeconfig and -listen.
func TestBinary(t *testing.T) {
	t.Parallel()
	c := cluster.Start(t)
	bin := buildBinary(t)
	up := startStub(t, "outside.example.org. 300 IN A 192.0.2.20")
	ns := c.NewNamespace(t, "bin")
	http := cluster.Port{Name: "http", Port: 80}
	web := c.CreateService(t, cluster.ClusterIPService(ns, "web", http))
	c.CreateService(t, cluster.HeadlessService(ns, "head", http))
	c.CreateEndpointSlice(t, cluster.EndpointSlice(ns, "head", "head-1", discoveryv1.AddressTypeIPv4, []cluster.Port{http},
		cluster.Endpoint{Addresses: []string{"10.249.0.1"}, Hostname: "h0"}))
	webN, headN := svcName("web", ns), svcName("head", ns)
	cases := func(ttl string) []resolvertest.Case {
		return append(authoritative(
			resolvertest.Case{Qname: webN, Qtype: dns.TypeA, Answer: []string{webN + " " + ttl + " IN A " + web.Spec.ClusterIP}},
			resolvertest.Case{Qname: "h0." + headN, Qtype: dns.TypeA, Answer: []string{"h0." + headN + " " + ttl + " IN A 10.249.0.1"}},
		), resolvertest.Case{Qname: "outside.example.org.", Qtype: dns.TypeA, Answer: []string{"outside.example.org. * IN A 192.0.2.20"}})
	}

	t.Run("check-config deploy", func(t *testing.T) { checkDeployConfigs(t, bin) })

	t.Run("config file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "clusterdns.yaml")
		write := func(ttl string) {
			text := strings.Replace(configYAML(up.Addr, c.Kubeconfig), "ttl: 5", "ttl: "+ttl, 1) + "log: {format: json, level: info}\n"
			if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write("5")
		began := time.Now()
		p := startProc(t, bin, "-config", file)
		l := p.waitStarted(t, 30*time.Second)
		t.Logf("FIGURE binary serving %v after exec (first sync included)", time.Since(began).Round(time.Millisecond))
		addr := l.DNS[0]
		check(t, addr, cases("5"))
		if code, body := httpGet(t, "http://"+l.HTTP["ready"]+"/ready"); code != 200 {
			t.Errorf("/ready: %d %q", code, body)
		}
		if code, body := httpGet(t, "http://"+l.HTTP["metrics"]+"/metrics"); code != 200 || !strings.Contains(body, "clusterdns_") {
			t.Errorf("/metrics: %d, %d bytes, clusterdns_ metrics: %v", code, len(body), strings.Contains(body, "clusterdns_"))
		}

		// A ConfigMap update: the new file and SIGHUP.
		write("30")
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		d := waitFor(t, addr, cases("30")[0], time.Now(), 10*time.Second)
		t.Logf("FIGURE reload (SIGHUP) visible after %v", d.Round(time.Millisecond))
		check(t, addr, cases("30"))

		code, took := p.stop(t)
		t.Logf("FIGURE SIGTERM to exit: %v (lameduck 0s)", took.Round(time.Millisecond))
		if code != 0 {
			t.Errorf("exit code %d after SIGTERM, want 0", code)
		}
	})

	t.Run("out of cluster", func(t *testing.T) {
		// The file only names the upstream (the stub, never this machine's
		// resolvers) and keeps HTTP on loopback; -kubeconfig turns the index on.
		file := filepath.Join(t.TempDir(), "local.yaml")
		text := fmt.Sprintf("forward: {upstreams: [%q]}\nhttp: {metrics: \"127.0.0.1:0\", health: \"127.0.0.1:0\", ready: \"127.0.0.1:0\"}\n", up.Addr)
		if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		addr, p := startOnFreePort(t, bin, "-config", file, "-kubeconfig", c.Kubeconfig)
		waitFor(t, addr, cases("5")[0], time.Now(), 30*time.Second)
		before := up.Queries.Load()
		check(t, addr, cases("5"))
		if n := up.Queries.Load() - before; n < 1 {
			t.Errorf("the stub saw %d queries: outside.example.org was not forwarded", n)
		}
		if _, err := exec.LookPath("dig"); err == nil {
			host, port, _ := net.SplitHostPort(addr)
			out := strings.TrimSpace(dig(t, addr, "+short", webN))
			t.Logf("dig @%s -p %s %s +short -> %s", host, port, webN, out)
			if out != web.Spec.ClusterIP {
				t.Errorf("dig +short %s: %q, want %s", webN, out, web.Spec.ClusterIP)
			}
		}
		code, took := p.stop(t)
		t.Logf("FIGURE SIGTERM to exit: %v (default lameduck 5s)", took.Round(time.Millisecond))
		if code != 0 {
			t.Errorf("exit code %d after SIGTERM, want 0", code)
		}
	})
}

// startOnFreePort runs bin with args and -listen 127.0.0.1:PORT on a port
// found free, trying another if it was taken meanwhile, and returns the DNS
// address once the process answers there.
func startOnFreePort(t *testing.T, bin string, args ...string) (string, *proc) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
		p := startProc(t, bin, append(args, "-listen", addr)...)
		err := p.waitServing(addr, 30*time.Second)
		if err == nil {
			return addr, p
		}
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			t.Fatalf("clusterdns on %s: %v\n%s", addr, err, p.out.Tail(20))
		}
	}
}

var errPortTaken = errors.New("listen address taken")

// waitServing waits until the process answers a query on addr.
func (p *proc) waitServing(addr string, bound time.Duration) error {
	deadline := time.Now().Add(bound)
	for {
		// Any reply will do (SERVFAIL before the index synced); the zone's
		// own SOA is never forwarded, so the stub's count stays untouched.
		if _, err := exchange("udp", addr, resolvertest.Query("cluster.local.", dns.TypeSOA)); err == nil {
			return nil
		}
		select {
		case <-p.exited:
			if strings.Contains(p.out.String(), "address already in use") {
				return errPortTaken
			}
			return fmt.Errorf("exited (%s) before answering", p.cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer after %v", bound)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkDeployConfigs runs `clusterdns -check-config` on the configuration
// inside every ConfigMap of deploy/ and deploy/nodelocal/, and on a broken
// one, which must fail.
func checkDeployConfigs(t *testing.T, bin string) {
	manifests, err := cluster.DeployManifests()
	if err != nil {
		t.Fatal(err)
	}
	configs, err := cluster.ExtractConfigs(t.TempDir(), manifests...)
	if err != nil {
		t.Fatal(err)
	}
	if len(configs) < 2 {
		t.Errorf("configs in deploy/: %v, want the cluster one and the node-local one", configs)
	}
	run := func(file string) (int, string) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, "-check-config", file).CombinedOutput()
		var exit *exec.ExitError
		switch {
		case err == nil:
			return 0, string(out)
		case errors.As(err, &exit):
			return exit.ExitCode(), string(out)
		}
		t.Fatalf("clusterdns -check-config %s: %v", file, err)
		return -1, ""
	}
	for _, f := range configs {
		code, out := run(f)
		t.Logf("clusterdns -check-config %s: exit %d: %s", filepath.Base(f), code, strings.TrimSpace(out))
		if code != 0 || !strings.Contains(out, f+": OK") {
			t.Errorf("clusterdns -check-config %s: exit %d\n%s", filepath.Base(f), code, out)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("listen: [\"127.0.0.1:0\"]\nkubernetes:\n  ttl: 99999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out := run(bad); code != 1 || !strings.Contains(out, "ttl") {
		t.Errorf("-check-config on an invalid ttl: exit %d, %q; want 1 and the field named", code, out)
	}
}
