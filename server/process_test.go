package server

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/klog/v2"
)

func TestApplyMemoryLimit(t *testing.T) {
	for _, c := range []struct {
		name  string
		files map[string]string // relative to the cgroup root
		env   string            // GOMEMLIMIT
		want  int64             // the Go limit set; 0: none
		log   string
	}{
		{name: "v2", files: map[string]string{"memory.max": "268435456\n"}, want: 241591910, log: "cgroup_limit_bytes=268435456"},
		{name: "v2 max", files: map[string]string{"memory.max": "max\n"}},
		{name: "v1", files: map[string]string{"memory/memory.limit_in_bytes": "104857600\n"}, want: 94371840, log: "memory.limit_in_bytes"},
		{name: "v1 unlimited", files: map[string]string{"memory/memory.limit_in_bytes": "9223372036854771712\n"}},
		{name: "v2 wins over v1", files: map[string]string{"memory.max": "1000000000", "memory/memory.limit_in_bytes": "5"}, want: 900000000},
		{name: "garbage", files: map[string]string{"memory.max": "lots\n"}},
		{name: "zero", files: map[string]string{"memory.max": "0\n"}},
		{name: "no cgroup files"},
		{name: "GOMEMLIMIT set", files: map[string]string{"memory.max": "268435456\n"}, env: "100MiB", log: "GOMEMLIMIT is set"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			for name, text := range c.files {
				p := filepath.Join(root, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			logs := &logBuffer{}
			var set int64
			getenv := func(k string) string {
				if k == "GOMEMLIMIT" {
					return c.env
				}
				return ""
			}
			got := applyMemoryLimit(logs.Logger(), root, getenv, func(n int64) int64 { set = n; return 0 })
			if got != c.want || set != c.want {
				t.Errorf("returned %d, set %d; want %d", got, set, c.want)
			}
			if c.log != "" && !strings.Contains(logs.String(), c.log) {
				t.Errorf("log lacks %q:\n%s", c.log, logs)
			}
			if c.want != 0 && !strings.Contains(logs.String(), "level=INFO msg=\"Go memory limit set from the cgroup memory limit\"") {
				t.Errorf("the limit set is not logged at info:\n%s", logs)
			}
		})
	}
}

func TestApplyGCPercent(t *testing.T) {
	for _, env := range []string{"", "200", "off"} {
		logs := &logBuffer{}
		set := -1
		getenv := func(k string) string {
			if k == "GOGC" {
				return env
			}
			return ""
		}
		got := applyGCPercent(logs.Logger(), getenv, func(n int) int { set = n; return 100 })
		switch {
		case env == "" && (got != gcPercent || set != gcPercent):
			t.Errorf("GOGC unset: returned %d, set %d; want %d", got, set, gcPercent)
		case env != "" && (got != 0 || set != -1 || !strings.Contains(logs.String(), "GOGC is set")):
			t.Errorf("GOGC=%s: returned %d, set %d, log %q; want the operator's choice kept and logged", env, got, set, logs)
		}
	}
}

func TestKlogRoutedToSlog(t *testing.T) {
	logs := &logBuffer{}
	routeKlog(logs.Logger())
	defer klog.ClearLogger()
	klog.ErrorS(errors.New("boom"), "watch failed", "resource", "services")
	klog.InfoS("informer synced")
	klog.Background().V(4).Info("very chatty")
	klog.Flush()
	out := logs.String()
	for _, want := range []string{
		`level=ERROR msg="watch failed" component=client-go err=boom resource=services`,
		`level=INFO msg="informer synced" component=client-go`,
		`level=DEBUG msg="very chatty" component=client-go`, // V(4) is slog level -4
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}

	info := &logBuffer{}
	routeKlog(newLogger(info, FormatJSON, slog.LevelInfo))
	klog.Background().V(2).Info("reflector detail")
	klog.InfoS("kept")
	if out := info.String(); strings.Contains(out, "reflector detail") || !strings.Contains(out, `"msg":"kept","component":"client-go"`) {
		t.Errorf("at info level, verbose client-go lines are dropped and V(0) ones kept as JSON:\n%s", out)
	}
}
