package server

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver/resolvertest"
)

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func runCommand(args ...string) (code int, stdout, stderr string) {
	var out, errb logBuffer
	code = command{stdout: &out, stderr: &errb, signals: func() (<-chan os.Signal, func()) {
		return make(chan os.Signal), func() {}
	}}.run(args)
	return code, out.String(), errb.String()
}

func TestCheckConfig(t *testing.T) {
	good := writeFile(t, "good.yaml", configText("127.0.0.1:5399", ""))
	bad := writeFile(t, "bad.yaml", configText("127.0.0.1:5399", "log:\n  format: xml\n"))
	for _, c := range []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"good", []string{"-check-config", good}, 0, good + ": OK\n", ""},
		{"bad", []string{"-check-config", bad}, 1, "", bad + ":8: log.format: must be text or json, got \"xml\"\n"},
		{"missing", []string{"-check-config", good + ".missing"}, 1, "", "read config: open " + good + ".missing: no such file or directory\n"},
		{"loop through -listen", []string{"-listen", "127.0.0.1:5399", "-check-config", good}, 1, "", "forward.upstreams[0]: forwarding loop: 127.0.0.1:5399 is our own listen address 127.0.0.1:5399\n"},
		{"bad -listen", []string{"-listen", "nowhere", "-check-config", good}, 1, "", "-listen flag: listen[0]: must be \"ip:port\""},
		{"-kubeconfig", []string{"-kubeconfig", "/nonexistent/kubeconfig", "-check-config", good}, 0, good + ": OK\n", ""},
		{"version", []string{"-version"}, 0, "clusterdns devel go", ""},
		{"unknown flag", []string{"-frobnicate"}, 2, "", "flag provided but not defined: -frobnicate"},
		{"stray argument", []string{"-check-config", good, "extra"}, 2, "", "unexpected arguments: extra"},
		{"bad config", []string{"-config", bad}, 1, "", "clusterdns: " + bad + ":8: log.format:"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := runCommand(c.args...)
			if code != c.code || !strings.HasPrefix(stdout, c.stdout) || !strings.Contains(stderr, c.stderr) || (c.stderr == "" && stderr != "") {
				t.Fatalf("exit %d, stdout %q, stderr %q\nwant exit %d, stdout %q, stderr containing %q", code, stdout, stderr, c.code, c.stdout, c.stderr)
			}
		})
	}
}

func TestFlagsMakeConfig(t *testing.T) {
	f, err := parseFlags(io.Discard, []string{"-config", "c.yaml", "-listen", "127.0.0.1:0", "-listen", "[::1]:0", "-kubeconfig", "/k/config"})
	if err != nil {
		t.Fatal(err)
	}
	if f.config != "c.yaml" {
		t.Errorf("config %q", f.config)
	}
	cfg, err := f.loader().Parse("c.yaml", []byte(configText("127.0.0.1:5399", "")))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.Listen, " "); got != "127.0.0.1:0 [::1]:0" {
		t.Errorf("listen %q, want both -listen values", got)
	}
	if cfg.Kubernetes == nil || cfg.Kubernetes.Kubeconfig != "/k/config" || cfg.Kubernetes.Zone != "cluster.local" {
		t.Errorf("kubernetes %+v, want the index on with kubeconfig /k/config and defaults", cfg.Kubernetes)
	}
}

var startedLine = regexp.MustCompile(`clusterdns started.*dns=\[([0-9.]+:[0-9]+)`)

// waitStarted reads log lines until the started line and returns the DNS
// address it names; the rest of the log is drained into a buffer until EOF,
// when eof is closed.
func waitStarted(t *testing.T, r io.Reader, rest *logBuffer) (addr string, eof <-chan struct{}) {
	t.Helper()
	found := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(r)
		sent := false
		for sc.Scan() {
			_, _ = rest.Write(append(sc.Bytes(), '\n'))
			if m := startedLine.FindStringSubmatch(sc.Text()); m != nil && !sent {
				found <- m[1]
				sent = true
			}
		}
		if !sent {
			close(found)
		}
	}()
	select {
	case addr, ok := <-found:
		if !ok {
			t.Fatalf("exited before starting:\n%s", rest)
		}
		return addr, done
	case <-time.After(30 * time.Second):
		t.Fatalf("not started within 30s:\n%s", rest)
	}
	return "", done
}

func TestMainListenFlagAndSignals(t *testing.T) {
	up := startStub(t, "example.", "www.example. 300 IN A 192.0.2.1")
	path := writeFile(t, "c.yaml", strings.Replace(configText(up.Addr, ""), `listen: ["127.0.0.1:0"]`, `listen: ["127.0.0.1:1"]`, 1))
	pr, pw := io.Pipe()
	sig := make(chan os.Signal, 1)
	var out logBuffer
	done := make(chan int, 1)
	go func() {
		defer pw.Close()
		done <- command{stdout: &out, stderr: pw, signals: func() (<-chan os.Signal, func()) { return sig, func() {} }}.
			run([]string{"-config", path, "-listen", "127.0.0.1:0"})
	}()
	var logs logBuffer
	addr, _ := waitStarted(t, pr, &logs)
	wwwCase.Check(t, resolvertest.Exchange(t, "udp", addr, resolvertest.Query("www.example.", dns.TypeA)))
	sig <- syscall.SIGINT
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit within 10s of SIGINT")
	}
}

func TestBinarySIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "clusterdns")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/clusterdns/clusterdns/cmd/clusterdns")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	up := startStub(t, "example.", "www.example. 300 IN A 192.0.2.1")
	path := writeFile(t, "c.yaml", strings.Replace(configText(up.Addr, ""), "lameduck: 0s", "lameduck: 500ms", 1))
	cmd := exec.Command(bin, "-config", path)
	pr, pw, err := os.Pipe() // not StderrPipe: Wait would close it before the last lines are read
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // no-op once it exited
		<-exited
	})
	var logs logBuffer
	addr, eof := waitStarted(t, pr, &logs)
	wwwCase.Check(t, resolvertest.Exchange(t, "udp", addr, resolvertest.Query("www.example.", dns.TypeA)))

	// A bad config on SIGHUP is logged and the old one keeps answering.
	if err := os.WriteFile(path, []byte(configText(up.Addr, "cache: {size: 0}\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the bad config logged", func() bool {
		return strings.Contains(logs.String(), path+":7: cache.size: must be at least 1")
	})
	wwwCase.Check(t, resolvertest.Exchange(t, "udp", addr, resolvertest.Query("www.example.", dns.TypeA)))

	sent := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, logs.String())
		}
		if d := time.Since(sent); d < 500*time.Millisecond {
			t.Errorf("exited %s after SIGTERM, before the 500ms lameduck", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no exit within 10s of SIGTERM:\n%s", logs.String())
	}
	select {
	case <-eof:
	case <-time.After(5 * time.Second):
		t.Fatal("stderr not closed after exit")
	}
	if !strings.Contains(logs.String(), "signal=terminated") || !strings.Contains(logs.String(), "clusterdns stopped") {
		t.Errorf("shutdown not logged:\n%s", logs.String())
	}
}
