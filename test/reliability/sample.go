package reliability

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ProcStat is one reading of /proc/PID.
type ProcStat struct {
	RSS int64 // VmRSS, bytes
	HWM int64 // VmHWM (peak RSS since start or ResetPeakRSS), bytes
	FDs int   // open file descriptors
}

// ReadProc reads the memory and file descriptors of process pid.
func ReadProc(pid int) (ProcStat, error) {
	var s ProcStat
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("proc status: %w", err)
	}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var dst *int64
		switch k {
		case "VmRSS":
			dst = &s.RSS
		case "VmHWM":
			dst = &s.HWM
		default:
			continue
		}
		f := strings.Fields(v) // "12345 kB"
		if len(f) == 2 && f[1] == "kB" {
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err == nil {
				*dst = n << 10
			}
		}
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, fmt.Errorf("proc fd: %w", err)
	}
	s.FDs = len(ents)
	return s, nil
}

// ResetPeakRSS sets VmHWM of pid back to its current RSS (clear_refs 5), so
// a later VmHWM is the peak of what happened in between.
func ResetPeakRSS(pid int) error {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		return fmt.Errorf("reset peak rss: %w", err)
	}
	return nil
}

// Metrics is one scrape of a Prometheus text endpoint.
type Metrics []MetricSample

// MetricSample is one series: its name, its raw label text (`a="b",c="d"`)
// and value.
type MetricSample struct {
	Name   string
	Labels string
	Value  float64
}

// Sum adds the values of the series called name whose label text contains
// every one of match (`upstream="127.0.0.1:53"`); ok is false when none is.
func (m Metrics) Sum(name string, match ...string) (v float64, ok bool) {
next:
	for _, s := range m {
		if s.Name != name {
			continue
		}
		for _, x := range match {
			if !strings.Contains(s.Labels, x) {
				continue next
			}
		}
		v += s.Value
		ok = true
	}
	return v, ok
}

// Value is Sum without the ok.
func (m Metrics) Value(name string, match ...string) float64 {
	v, _ := m.Sum(name, match...)
	return v
}

// ParseMetrics reads the Prometheus text format (comments skipped).
func ParseMetrics(r io.Reader) (Metrics, error) {
	var out Metrics
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		var s MetricSample
		rest := line
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				return nil, fmt.Errorf("metrics: bad line %q", line)
			}
			s.Name, s.Labels, rest = line[:i], line[i+1:j], line[j+1:]
		} else {
			sp := strings.IndexByte(line, ' ')
			if sp < 0 {
				return nil, fmt.Errorf("metrics: bad line %q", line)
			}
			s.Name, rest = line[:sp], line[sp:]
		}
		f := strings.Fields(rest) // value [timestamp]
		if len(f) == 0 {
			return nil, fmt.Errorf("metrics: no value in %q", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics: value in %q: %w", line, err)
		}
		s.Value = v
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return out, nil
}

// Scrape fetches and parses url.
func Scrape(ctx context.Context, url string) (Metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	return ParseMetrics(bytes.NewReader(b))
}

// Peaks is what a Sampler saw.
type Peaks struct {
	Samples    int                // /proc readings
	PeakRSS    int64              // largest of sampled VmRSS and the final VmHWM, bytes
	MeanRSS    int64              // mean sampled VmRSS
	LastRSS    int64              // last sampled VmRSS
	PeakFDs    int                // most open file descriptors seen
	Scrapes    int                // successful /metrics scrapes
	Gauges     map[string]float64 // peak of each watched metric over the scrapes
	LastScrape Metrics            // the last successful scrape
}

// Goroutines is the peak of go_goroutines.
func (p Peaks) Goroutines() int { return int(p.Gauges["go_goroutines"]) }

// Sampler reads /proc of a process and scrapes its /metrics at fixed
// intervals until Stop. Its two goroutines end with Stop.
type Sampler struct {
	pid    int
	url    string
	gauges []string
	stop   chan struct{}
	wg     sync.WaitGroup

	hwmReset bool // VmHWM was reset at the start, so it is this period's peak

	mu  sync.Mutex // guards p and sum
	p   Peaks
	sum int64
}

// StartSampler samples /proc/pid every interval and scrapes metricsURL (if
// not "") every interval, keeping the peak of go_goroutines and of every
// metric named in gauges (summed over its series). It resets VmHWM first so
// PeakRSS covers only the sampled period.
func StartSampler(pid int, metricsURL string, interval time.Duration, gauges ...string) *Sampler {
	s := &Sampler{pid: pid, url: metricsURL, gauges: append([]string{"go_goroutines"}, gauges...),
		stop: make(chan struct{}), p: Peaks{Gauges: map[string]float64{}}}
	s.hwmReset = ResetPeakRSS(pid) == nil // else only the sampled peak counts
	s.procOnce()
	s.wg.Go(func() { s.loop(interval, s.procOnce) })
	if metricsURL != "" {
		s.scrapeOnce(interval)
		s.wg.Go(func() { s.loop(interval, func() { s.scrapeOnce(interval) }) })
	}
	return s
}

func (s *Sampler) loop(interval time.Duration, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			f()
		}
	}
}

func (s *Sampler) procOnce() {
	st, err := ReadProc(s.pid)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.p.Samples++
	s.sum += st.RSS
	s.p.LastRSS = st.RSS
	s.p.PeakRSS = max(s.p.PeakRSS, st.RSS)
	s.p.PeakFDs = max(s.p.PeakFDs, st.FDs)
}

func (s *Sampler) scrapeOnce(interval time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), max(interval, time.Second))
	defer cancel()
	m, err := Scrape(ctx, s.url)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.p.Scrapes++
	s.p.LastScrape = m
	for _, g := range s.gauges {
		if v, ok := m.Sum(g); ok {
			if old, seen := s.p.Gauges[g]; !seen || v > old {
				s.p.Gauges[g] = v
			}
		}
	}
}

// Snapshot returns the peaks so far.
func (s *Sampler) Snapshot() Peaks {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.p
	p.Gauges = make(map[string]float64, len(s.p.Gauges))
	for k, v := range s.p.Gauges {
		p.Gauges[k] = v
	}
	if p.Samples > 0 {
		p.MeanRSS = s.sum / int64(p.Samples)
	}
	return p
}

// Stop ends sampling, takes a last reading and returns the peaks.
func (s *Sampler) Stop() Peaks {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.wg.Wait()
	s.procOnce()
	if st, err := ReadProc(s.pid); err == nil && s.hwmReset {
		s.mu.Lock()
		s.p.PeakRSS = max(s.p.PeakRSS, st.HWM)
		s.mu.Unlock()
	}
	return s.Snapshot()
}
