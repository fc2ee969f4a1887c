// Package cluster gives Go tests a real control plane: etcd and
// kube-apiserver on 127.0.0.1, built from source by build.sh (cached outside
// the repo) and started by up.sh, once per test binary.
//
// Design constraint: tests must see the API server users run, not a fake, yet
// run on a machine with nothing but Go. So the binaries are built through the
// module proxy; when that is impossible the tests skip loudly, except in CI
// (CI=true), where they fail. Nothing here talks to anything but loopback.
//
// Use it from a test:
//
//	func TestMain(m *testing.M) { cluster.Main(m) }
//
//	func TestX(t *testing.T) {
//		c := cluster.Start(t)
//		ns := c.NewNamespace(t, "x")
//		c.CreateService(t, cluster.ClusterIPService(ns, "web", cluster.Port{Name: "http", Port: 80}))
//	}
//
// Main stops the servers when the tests end; without it a watchdog started by
// up.sh stops them once the test binary has exited, however it exited.
package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// ErrUnavailable marks a control plane that cannot be provided on this
// machine (no module proxy to build from, no openssl): tests skip on it
// unless CI=true. Any other start error is a failure.
var ErrUnavailable = errors.New("real control plane unavailable")

// Client rate limits: far above client-go's 5/10 so tests can load thousands
// of objects quickly (the API server on loopback is not the bottleneck).
const (
	clientQPS   = 500
	clientBurst = 1000
)

// Cluster is a running etcd and kube-apiserver. Its methods may be called
// from parallel tests, except StopAPIServer and StartAPIServer, which affect
// every test using the cluster: call them only from tests that do not run in
// parallel with other cluster tests.
type Cluster struct {
	// Kubeconfig is the path of an admin (system:masters) kubeconfig.
	Kubeconfig string
	// Config is the admin client configuration with raised QPS and Burst.
	Config *rest.Config
	// Client is an admin clientset built from Config.
	Client kubernetes.Interface
	// StateDir holds certificates, data and logs (logs/apiserver.log, logs/etcd.log).
	StateDir string

	scripts string   // directory of build.sh, up.sh and down.sh
	env     []string // environment for up.sh and down.sh: state dir, binaries, owner
	mu      sync.Mutex
}

// shared is the one cluster of this test binary. Package-level because its
// lifetime is the process's: every test in the binary shares it, and Main
// stops it after the last one.
var shared struct {
	once sync.Once
	c    *Cluster
	err  error
}

// Start returns the test binary's cluster, building and starting it on the
// first call. It skips t when the control plane is unavailable (see
// ErrUnavailable) or in -short mode, and fails t on any other error.
func Start(t testing.TB) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("real-cluster test skipped in -short mode")
	}
	shared.once.Do(func() { shared.c, shared.err = start() })
	if err := shared.err; err != nil {
		if errors.Is(err, ErrUnavailable) && os.Getenv("CI") != "true" {
			bar := strings.Repeat("!", 72)
			t.Skipf("\n%s\nREAL-CLUSTER TEST SKIPPED: %v\n(with CI=true this is a failure)\n%s", bar, err, bar)
		}
		t.Fatalf("real cluster: %v", err)
	}
	return shared.c
}

// Main runs the tests and then stops the cluster if one was started. Call it
// from TestMain; it does not return.
func Main(m *testing.M) {
	code := m.Run()
	if shared.c != nil {
		if err := shared.c.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "cluster: stop: %v\n", err)
		}
	}
	os.Exit(code)
}

func start() (*Cluster, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	scripts := filepath.Join(root, "test", "cluster")

	// The first build takes long (about 12 minutes cold on 2 cores): test/run.sh
	// runs build.sh before `go test` so that here it is a cache hit.
	out, err := run(context.Background(), scripts, "build.sh", nil)
	if err != nil {
		return nil, fmt.Errorf("%w: build.sh: %w\n%s", ErrUnavailable, err, tail(out, 20))
	}
	bins := keyValues(out)
	if bins["etcd"] == "" || bins["kube-apiserver"] == "" {
		return nil, fmt.Errorf("build.sh printed no binary paths:\n%s", tail(out, 20))
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		return nil, fmt.Errorf("%w: openssl not found (test/tools/install.sh installs it)", ErrUnavailable)
	}

	state, err := os.MkdirTemp("", "clusterdns-cluster-")
	if err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	c := &Cluster{
		StateDir: state,
		scripts:  scripts,
		env: []string{
			"CLUSTERDNS_TEST_STATE=" + state,
			"CLUSTERDNS_TEST_OWNER_PID=" + strconv.Itoa(os.Getpid()),
			"ETCD=" + bins["etcd"],
			"KUBE_APISERVER=" + bins["kube-apiserver"],
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err = run(ctx, scripts, "up.sh", c.env)
	if err != nil {
		_ = c.stop()
		return nil, fmt.Errorf("up.sh: %w\n%s", err, tail(out, 30))
	}
	c.Kubeconfig = lastLine(out)

	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		_ = c.stop()
		return nil, fmt.Errorf("load kubeconfig %s: %w", c.Kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = clientQPS, clientBurst
	cfg.UserAgent = "clusterdns-test"
	c.Config = cfg
	if c.Client, err = kubernetes.NewForConfig(cfg); err != nil {
		_ = c.stop()
		return nil, fmt.Errorf("clientset: %w", err)
	}
	if err := c.waitSystem(ctx); err != nil {
		_ = c.stop()
		return nil, err
	}
	return c, nil
}

// stop stops both servers and removes the state dir.
func (c *Cluster) stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := run(ctx, c.scripts, "down.sh", c.env)
	if err != nil {
		return fmt.Errorf("down.sh: %w\n%s", err, tail(out, 20))
	}
	return nil
}

// StopAPIServer stops kube-apiserver and keeps etcd, so a test can watch how
// clients behave while the API is gone. See the Cluster doc on parallel tests.
func (c *Cluster) StopAPIServer(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := run(ctx, c.scripts, "down.sh", c.env, "apiserver"); err != nil {
		t.Fatalf("stop kube-apiserver: %v\n%s", err, tail(out, 20))
	}
}

// StartAPIServer starts kube-apiserver again, with the same flags and port,
// after StopAPIServer, and returns once /readyz answers. A no-op when it runs.
func (c *Cluster) StartAPIServer(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := run(ctx, c.scripts, "up.sh", c.env); err != nil {
		t.Fatalf("start kube-apiserver: %v\n%s", err, tail(out, 30))
	}
}

// run runs script from dir with env added to the process environment and
// returns its stdout; stderr is appended to the output on failure so the
// caller's error shows what went wrong.
func run(ctx context.Context, dir, script string, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(dir, script)}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// Servers started in the background get their own log files, but guard
	// against a stray child holding the pipes open.
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return append(stdout.Bytes(), stderr.Bytes()...), err
	}
	return stdout.Bytes(), nil
}

// moduleRoot finds the repository root (the directory holding go.mod) from
// the working directory, which `go test` sets to the package's directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "test", "cluster", "up.sh")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root with test/cluster/up.sh not found above the working directory")
		}
		dir = parent
	}
}

// keyValues parses "key=value" lines.
func keyValues(out []byte) map[string]string {
	m := make(map[string]string)
	for line := range strings.Lines(string(out)) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			m[k] = v
		}
	}
	return m
}

func lastLine(out []byte) string {
	s := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// tail returns the last n lines of out, for error messages.
func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
