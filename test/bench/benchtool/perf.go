package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// record is one line of the results file (JSON lines): one measured run
// (kind "perf"), one memory sample ("mem") or one server's programming
// latency ("proglat"), or the API server's LIST count ("lists").
type record struct {
	Kind     string `json:"kind"`
	Scenario string `json:"scenario,omitempty"`
	Impl     string `json:"impl"`
	Rep      int    `json:"rep,omitempty"`
	Phase    string `json:"phase,omitempty"`

	Sent       int64            `json:"sent,omitempty"`
	Completed  int64            `json:"completed,omitempty"`
	Lost       int64            `json:"lost,omitempty"`
	QPS        float64          `json:"qps,omitempty"`
	P50ms      float64          `json:"p50_ms,omitempty"`
	P99ms      float64          `json:"p99_ms,omitempty"`
	MaxMs      float64          `json:"max_ms,omitempty"`
	CPUSeconds float64          `json:"cpu_s,omitempty"`
	CPUPerQus  float64          `json:"cpu_us_per_query,omitempty"`
	OtherCPU   float64          `json:"other_cpu_pct,omitempty"`
	Rcodes     map[string]int64 `json:"rcodes,omitempty"`
	// AllocsPerQ is nil when not measured: the server has no Go metrics
	// (AllocsErr empty) or a scrape failed (AllocsErr says why).
	AllocsPerQ *float64 `json:"allocs_per_query,omitempty"`
	AllocsErr  string   `json:"allocs_error,omitempty"`

	RSSKiB int64 `json:"rss_kib,omitempty"`
	HWMKiB int64 `json:"hwm_kib,omitempty"`

	Changes int `json:"changes,omitempty"`
	Missed  int `json:"missed,omitempty"`

	Lists map[string]int64 `json:"lists,omitempty"`

	// Objects counts what the loader created, by resource (kind "objects").
	Objects map[string]int64 `json:"objects,omitempty"`
}

func appendRecord(path string, r record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode record: %w", err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("open results %s: %w", path, err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write results %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close results %s: %w", path, err)
	}
	return nil
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. The
// kernel fixes it at 100 on every architecture for this interface.
const clockTicks = 100

// procCPU returns the CPU time (user + system, all threads, including
// exited ones) process pid has used.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read stat of %d: %w", pid, err)
	}
	// The command name (field 2) may hold spaces and parentheses: the fields
	// we want are counted from the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("parse stat of %d: no ')'", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("parse stat of %d: %d fields", pid, len(f))
	}
	// f[0] is field 3 (state): utime is field 14, stime field 15.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("parse stat of %d: %w", pid, err)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// machineBusy returns the CPU time all CPUs spent not idle (the first line
// of /proc/stat: user, nice, system, irq, softirq, steal; guest time is
// already in user).
func machineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("read /proc/stat: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("parse /proc/stat: %q", line)
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc/stat: %w", err)
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// procMem returns VmRSS and VmHWM (peak RSS) of pid in KiB.
func procMem(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read status of %d: %w", pid, err)
	}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parse %s of %d: %w", k, pid, err)
		}
		if k == "VmRSS" {
			rss = n
		} else {
			hwm = n
		}
	}
	return rss, hwm, nil
}

// perfResult is what one dnsperf run reported.
type perfResult struct {
	sent, completed, lost int64
	qps                   float64
	latencies             []float64 // seconds, one per answered query
	rcodes                map[string]int64
}

// parseDNSPerf reads dnsperf -v output: one "> RCODE name type latency"
// line per answer ("> T name type" per timeout), then the statistics block.
func parseDNSPerf(r io.Reader) (perfResult, error) {
	res := perfResult{rcodes: map[string]int64{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "> ") {
			// "> T name type" is a query that timed out: counted as lost
			// in the statistics, it has no latency.
			f := strings.Fields(line)
			if len(f) < 5 || f[1] == "T" {
				continue
			}
			lat, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				return res, fmt.Errorf("parse latency in %q: %w", line, err)
			}
			res.latencies = append(res.latencies, lat)
			res.rcodes[f[1]]++
			continue
		}
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		first, _, _ := strings.Cut(v, " ")
		var err error
		switch k {
		case "Queries sent":
			res.sent, err = strconv.ParseInt(first, 10, 64)
		case "Queries completed":
			res.completed, err = strconv.ParseInt(first, 10, 64)
		case "Queries lost":
			res.lost, err = strconv.ParseInt(first, 10, 64)
		case "Queries per second":
			res.qps, err = strconv.ParseFloat(first, 64)
		}
		if err != nil {
			return res, fmt.Errorf("parse %q: %w", line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return res, fmt.Errorf("read dnsperf output: %w", err)
	}
	if res.sent == 0 {
		return res, errors.New("dnsperf printed no statistics")
	}
	return res, nil
}

// percentile returns the p-th percentile (0 < p <= 1) of sorted values by
// the nearest-rank method.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.999999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// runPerf is the "perf" command: one dnsperf run against the server with
// process id pid, recording QPS, latency percentiles, losses and the
// server's CPU time per answered query.
func runPerf(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("perf", flag.ContinueOnError)
	server := fs.String("server", "", "server address, 127.0.0.1:port")
	pid := fs.Int("pid", 0, "server process id (CPU and memory are read from /proc)")
	data := fs.String("data", "", "dnsperf query file")
	duration := fs.Int("duration", 10, "run length, seconds (dnsperf -l)")
	clients := fs.Int("clients", 4, "dnsperf -c: client sockets")
	outstanding := fs.Int("outstanding", 100, "dnsperf -q: queries in flight")
	maxQPS := fs.Int("max-qps", 0, "dnsperf -Q: rate cap, 0 for none")
	timeout := fs.Int("timeout", 2, "dnsperf -t: seconds before a query counts as lost")
	cpu := fs.String("cpu", "1", "CPU list dnsperf is pinned to with taskset; empty for none")
	scenario := fs.String("scenario", "", "scenario name")
	impl := fs.String("impl", "", "server name")
	rep := fs.Int("rep", 0, "repetition number")
	results := fs.String("results", "", "results file to append to")
	logFile := fs.String("log", "", "keep dnsperf's summary here")
	metrics := fs.String("metrics", "", "the server's Prometheus /metrics address, 127.0.0.1:port, to count its heap allocations (go_memstats_mallocs_total); empty for none")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ap, err := netip.ParseAddrPort(*server)
	if err != nil || !ap.Addr().IsLoopback() {
		return fmt.Errorf("-server %q must be a loopback ip:port", *server)
	}
	if *pid <= 0 || *data == "" || *results == "" || *scenario == "" || *impl == "" {
		return errors.New("-pid, -data, -results, -scenario and -impl are required")
	}
	dargs := []string{"-s", ap.Addr().String(), "-p", strconv.Itoa(int(ap.Port())), "-d", *data,
		"-l", strconv.Itoa(*duration), "-c", strconv.Itoa(*clients), "-q", strconv.Itoa(*outstanding),
		"-t", strconv.Itoa(*timeout), "-v"}
	if *maxQPS > 0 {
		dargs = append(dargs, "-Q", strconv.Itoa(*maxQPS))
	}
	name := "dnsperf"
	if *cpu != "" {
		name, dargs = "taskset", append([]string{"-c", *cpu, "dnsperf"}, dargs...)
	}
	out, err := os.CreateTemp(filepath.Dir(*results), "dnsperf-*.out")
	if err != nil {
		return fmt.Errorf("dnsperf output file: %w", err)
	}
	defer os.Remove(out.Name())
	defer out.Close()

	ctx, cancel := context.WithTimeout(ctx, time.Duration(*duration+*timeout+30)*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, dargs...)
	cmd.Stdout, cmd.Stderr = out, out
	// The scrapes sit outside the CPU readings: their CPU is not the traffic's.
	allocs := newAllocsProbe(*metrics)
	allocs.start(ctx)
	cpu0, err := procCPU(*pid)
	if err != nil {
		return err
	}
	busy0, err := machineBusy()
	if err != nil {
		return err
	}
	start := time.Now()
	runErr := cmd.Run()
	wall := time.Since(start)
	busy1, err := machineBusy()
	if err != nil {
		return err
	}
	cpu1, err := procCPU(*pid)
	if err != nil {
		return fmt.Errorf("server died during the run: %w", err)
	}
	allocs.stop(ctx)
	var loadCPU time.Duration // dnsperf's own (taskset exec'd it: same process)
	if cmd.ProcessState != nil {
		loadCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	rss, hwm, err := procMem(*pid)
	if err != nil {
		return err
	}
	if _, err := out.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("rewind dnsperf output: %w", err)
	}
	res, err := parseDNSPerf(out)
	if runErr != nil || err != nil {
		return fmt.Errorf("dnsperf %s: %w", strings.Join(dargs, " "), errors.Join(runErr, err))
	}
	if *logFile != "" {
		if err := keepSummary(out, *logFile); err != nil {
			return err
		}
	}
	slices.Sort(res.latencies)
	r := record{
		Kind: "perf", Scenario: *scenario, Impl: *impl, Rep: *rep,
		Sent: res.sent, Completed: res.completed, Lost: res.lost, QPS: res.qps,
		P50ms:      1000 * percentile(res.latencies, 0.50),
		P99ms:      1000 * percentile(res.latencies, 0.99),
		MaxMs:      1000 * percentile(res.latencies, 1),
		CPUSeconds: (cpu1 - cpu0).Seconds(),
		OtherCPU:   100 * max(0, (busy1-busy0-(cpu1-cpu0)-loadCPU).Seconds()) / wall.Seconds(),
		Rcodes:     res.rcodes,
		RSSKiB:     rss, HWMKiB: hwm,
	}
	if res.completed > 0 {
		r.CPUPerQus = 1e6 * r.CPUSeconds / float64(res.completed)
	}
	allocs.fill(&r)
	fmt.Fprintf(os.Stderr, "perf: %-10s %-9s rep %d: %8.0f qps  p50 %.3f ms  p99 %.3f ms  lost %d  cpu %.2f us/q  allocs %s/q  rss %d MiB  other cpu %.0f%%\n",
		*scenario, *impl, *rep, r.QPS, r.P50ms, r.P99ms, r.Lost, r.CPUPerQus, showAllocs(r), rss>>10, r.OtherCPU)
	return appendRecord(*results, r)
}

// keepSummary copies dnsperf's output without the per-query lines.
func keepSummary(f *os.File, path string) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("rewind dnsperf output: %w", err)
	}
	var b strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if !strings.HasPrefix(sc.Text(), "> ") {
			b.WriteString(sc.Text())
			b.WriteByte('\n')
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read dnsperf output: %w", err)
	}
	return writeFileAtomic(path, b.String())
}

// runMem is the "mem" command: record a server's RSS and peak RSS now, and
// with -reset start a new peak from the current RSS, so the next sample's
// peak covers only what happens in between.
func runMem(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("mem", flag.ContinueOnError)
	pid := fs.Int("pid", 0, "server process id")
	impl := fs.String("impl", "", "server name")
	phase := fs.String("phase", "", "when the sample was taken: synced, steady or relist")
	reset := fs.Bool("reset", false, "reset the peak (VmHWM) after sampling")
	results := fs.String("results", "", "results file to append to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pid <= 0 || *impl == "" || *phase == "" || *results == "" {
		return errors.New("-pid, -impl, -phase and -results are required")
	}
	rss, hwm, err := procMem(*pid)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "mem: %-9s %-7s rss %d MiB, peak %d MiB\n", *impl, *phase, rss>>10, hwm>>10)
	if err := appendRecord(*results, record{Kind: "mem", Impl: *impl, Phase: *phase, RSSKiB: rss, HWMKiB: hwm}); err != nil {
		return err
	}
	if *reset {
		// "5" resets the peak resident set size (proc(5), clear_refs).
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", *pid), []byte("5"), 0); err != nil {
			return fmt.Errorf("reset peak RSS of %d: %w", *pid, err)
		}
	}
	return nil
}
