package server

import (
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"

	"k8s.io/klog/v2"
)

// Process-wide settings Main applies once, before the server is built. They
// change global state (klog's logger, the Go runtime's memory limit), so
// New never does; tests call them with their side effects injected.

// setupProcess is what Main applies to the process: client-go logs through
// log, the GC runs at gcPercent and the Go memory limit follows the
// container's.
func setupProcess(log *slog.Logger) {
	routeKlog(log)
	applyGCPercent(log, os.Getenv, debug.SetGCPercent)
	applyMemoryLimit(log, cgroupRoot, os.Getenv, debug.SetMemoryLimit)
}

// gcPercent is the GOGC the server runs with: the heap may grow to 1.5x
// what is live (the index, mostly) before a collection, not the default
// 2x. Most of the live heap is the index, which is large and changes
// slowly, while queries leave little garbage (well under 1 KB each): at
// 10,000 services and 100,000 endpoints the default headroom alone was a
// third of the resident set. Measured in the load harness at that size,
// 50 instead of 100 takes about 15 MiB off the steady RSS for a few
// tenths of a microsecond of CPU per query.
const gcPercent = 50

// applyGCPercent sets the GC percent to gcPercent unless GOGC is set (the
// operator's choice wins). It returns the percent set, 0 if none.
func applyGCPercent(log *slog.Logger, getenv func(string) string, set func(int) int) int {
	if v := getenv("GOGC"); v != "" {
		log.Info("GOGC is set; the server's GC percent is not applied", "GOGC", v)
		return 0
	}
	set(gcPercent)
	log.Debug("GC percent set", "percent", gcPercent)
	return gcPercent
}

// routeKlog sends client-go's klog output through log, so the process writes
// one format. klog's verbosity V(n) becomes slog level -n: client-go's
// chatty verbose lines are below Info (V 1 to 4 show at debug), its errors
// stay errors.
func routeKlog(log *slog.Logger) {
	klog.SetSlogLogger(log.With("component", "client-go"))
}

// cgroupRoot is where the cgroup filesystem is mounted; inside a container
// with its own cgroup namespace it shows the container's own limits.
const cgroupRoot = "/sys/fs/cgroup"

const (
	// noMemoryLimit: a limit at or above it means none (cgroup v1 writes
	// "unlimited" as a page-aligned MaxInt64; v2 writes "max").
	noMemoryLimit = 1 << 50
	// memoryLimitPercent of the cgroup limit becomes the Go soft limit; the
	// rest is headroom for memory the Go runtime does not manage or count
	// late, so the GC works harder before the kernel's OOM killer acts.
	memoryLimitPercent = 90
)

// cgroupMemoryLimit returns the memory limit found under root (cgroup v2's
// memory.max, else v1's memory.limit_in_bytes) and the file it came from;
// ok is false when there is none.
func cgroupMemoryLimit(root string) (limit int64, file string, ok bool) {
	for _, f := range []string{"memory.max", "memory/memory.limit_in_bytes"} {
		p := filepath.Join(root, f)
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(data))
		if s == "max" {
			return 0, p, false
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 || n >= noMemoryLimit {
			return 0, p, false
		}
		return n, p, true
	}
	return 0, "", false
}

// applyMemoryLimit sets the Go soft memory limit to memoryLimitPercent of
// the cgroup memory limit under root, unless GOMEMLIMIT is set (the
// operator's choice wins) or there is no limit. It returns the limit set, 0
// if none.
func applyMemoryLimit(log *slog.Logger, root string, getenv func(string) string, set func(int64) int64) int64 {
	if v := getenv("GOMEMLIMIT"); v != "" {
		log.Info("GOMEMLIMIT is set; the Go memory limit is not derived from the cgroup", "GOMEMLIMIT", v)
		return 0
	}
	limit, file, ok := cgroupMemoryLimit(root)
	if !ok {
		log.Debug("no cgroup memory limit; the Go memory limit stays off", "file", file)
		return 0
	}
	soft := limit * memoryLimitPercent / 100 // no overflow: limit < noMemoryLimit
	set(soft)
	log.Info("Go memory limit set from the cgroup memory limit", "cgroup_limit_bytes", limit, "file", file,
		"gomemlimit_bytes", soft, "percent", memoryLimitPercent)
	return soft
}
