package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ModuleRoot is the directory holding go.mod above the working directory.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// BuildBinary builds cmd/clusterdns (without the race detector: the child's
// numbers must be the real binary's) to out, atomically.
func BuildBinary(ctx context.Context, root, out string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("build: %w", err)
	}
	tmp := fmt.Sprintf("%s.%d.tmp", out, os.Getpid())
	cmd := exec.CommandContext(ctx, "go", "build", "-o", tmp, "./cmd/clusterdns")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/clusterdns: %w\n%s", err, b)
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("build: %w", err)
	}
	return nil
}

// Child is clusterdns running as a child process, so its RSS, file
// descriptors and goroutines are its own.
type Child struct {
	PID  int
	DNS  netip.AddrPort            // UDP and TCP
	HTTP map[string]netip.AddrPort // "metrics", "health", "ready"

	cmd  *exec.Cmd
	log  *logTail
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, once done is closed
}

// startedLine is the fields of the log line a started server writes.
type startedLine struct {
	Msg  string                    `json:"msg"`
	DNS  []netip.AddrPort          `json:"dns"`
	HTTP map[string]netip.AddrPort `json:"http"`
}

const startedMsg = "clusterdns started"

// StartChild runs bin with the config file and waits until it logs that it
// started (log.format must be json), at most timeout. The child gets
// SIGKILL if this process dies first.
func StartChild(bin, config string, timeout time.Duration) (*Child, error) {
	started := make(chan startedLine, 1)
	c := &Child{log: newLogTail(400, func(line []byte) {
		if !bytes.Contains(line, []byte(startedMsg)) {
			return
		}
		var s startedLine
		if json.Unmarshal(line, &s) == nil && s.Msg == startedMsg {
			select {
			case started <- s:
			default:
			}
		}
	}), done: make(chan struct{})}
	c.cmd = exec.Command(bin, "-config", config)
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	c.cmd.Env = os.Environ()
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	c.cmd.WaitDelay = 5 * time.Second
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	c.PID = c.cmd.Process.Pid
	go func() { c.err = c.cmd.Wait(); close(c.done) }() // ends with the process
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case s := <-started:
		if len(s.DNS) == 0 {
			_ = c.Stop(5 * time.Second)
			return nil, fmt.Errorf("clusterdns logged no DNS address:\n%s", c.Log(20))
		}
		c.DNS, c.HTTP = s.DNS[0], s.HTTP
		return c, nil
	case <-c.done:
		return nil, fmt.Errorf("clusterdns exited before it started: %v\n%s", c.err, c.Log(30))
	case <-t.C:
		_ = c.Stop(5 * time.Second)
		return nil, fmt.Errorf("clusterdns did not start within %v:\n%s", timeout, c.Log(30))
	}
}

// URL is http://<address of endpoint>/<endpoint>, "" when it is off.
func (c *Child) URL(endpoint string) string {
	a, ok := c.HTTP[endpoint]
	if !ok {
		return ""
	}
	return "http://" + a.String() + "/" + endpoint
}

// Exited reports whether the process has ended.
func (c *Child) Exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM and waits for the exit at most timeout, then kills.
// It returns the exit error (nil for a clean exit) and is safe to repeat.
func (c *Child) Stop(timeout time.Duration) error {
	if !c.Exited() {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case <-c.done:
		case <-t.C:
			_ = c.cmd.Process.Kill()
			<-c.done
			return fmt.Errorf("clusterdns did not exit within %v of SIGTERM; killed", timeout)
		}
	}
	return c.err
}

// Log returns the last n lines the child wrote.
func (c *Child) Log(n int) string { return c.log.tail(n) }

// logTail keeps the last lines written to it and calls onLine for each.
type logTail struct {
	mu     sync.Mutex
	max    int
	lines  []string
	part   []byte
	onLine func([]byte)
}

func newLogTail(maxLines int, onLine func([]byte)) *logTail {
	return &logTail{max: maxLines, onLine: onLine}
}

func (l *logTail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.part = append(l.part, p...)
	for {
		i := bytes.IndexByte(l.part, '\n')
		if i < 0 {
			break
		}
		line := l.part[:i]
		l.onLine(line)
		l.lines = append(l.lines, string(line))
		if len(l.lines) > l.max {
			l.lines = l.lines[len(l.lines)-l.max:]
		}
		l.part = l.part[i+1:]
	}
	return len(p), nil
}

func (l *logTail) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := l.lines
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
