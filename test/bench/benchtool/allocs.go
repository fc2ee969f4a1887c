package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Allocations per query over the whole server path, measured the same way
// for every Go server: the Go runtime's go_memstats_mallocs_total (a
// cumulative count of heap objects allocated, which clusterdns's /metrics
// and CoreDNS's prometheus plugin both export) scraped right before and
// right after a dnsperf run, divided by the queries answered in it.
//
// A scrape allocates in the server too, and the counter is read in the
// middle of it, so a delta between two scrapes spans one whole scrape's
// allocations. Two back-to-back scrapes before the run measure that cost,
// and it is taken off the run's delta: what remains is the traffic's
// (plus whatever the server did in the background meanwhile, informer
// events and health probes, which are part of running it).

// mallocsMetric is the counter, in the Prometheus text format without labels.
const mallocsMetric = "go_memstats_mallocs_total"

// scrapeTimeout bounds one scrape: the servers answer /metrics on loopback
// in milliseconds even while busy.
const scrapeTimeout = 2 * time.Second

// parseMallocs returns the value of go_memstats_mallocs_total in a
// Prometheus text-format exposition.
func parseMallocs(r io.Reader) (float64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok || name != mallocsMetric {
			continue
		}
		// A timestamp may follow the value.
		v, _, _ = strings.Cut(strings.TrimSpace(v), " ")
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("parse %s: %w", mallocsMetric, err)
		}
		return n, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read metrics: %w", err)
	}
	return 0, fmt.Errorf("no %s in the metrics", mallocsMetric)
}

// scrapeMallocs reads go_memstats_mallocs_total from the /metrics endpoint
// at addr, a loopback ip:port.
func scrapeMallocs(ctx context.Context, client *http.Client, addr string) (float64, error) {
	if err := loopbackOnly(addr); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, scrapeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return 0, fmt.Errorf("scrape %s: %w", addr, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("scrape %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("scrape %s: %s", addr, resp.Status)
	}
	n, err := parseMallocs(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("scrape %s: %w", addr, err)
	}
	return n, nil
}

// allocsPerQuery is the run's allocations per answered query from three
// readings of the counter: two back to back before the run (their
// difference is one scrape's cost) and one after it.
func allocsPerQuery(before0, before1, after float64, completed int64) (float64, error) {
	if completed <= 0 {
		return 0, errors.New("no query answered")
	}
	if before1 < before0 || after < before1 {
		return 0, fmt.Errorf("%s went backwards (%.0f, %.0f, %.0f): did the server restart?", mallocsMetric, before0, before1, after)
	}
	scrape := before1 - before0
	return max(0, after-before1-scrape) / float64(completed), nil
}

// allocsProbe scrapes one server around a run. Without an address it
// measures nothing (a server without the metric, Unbound); a failed scrape
// is kept as an error for the record and never fails the run.
type allocsProbe struct {
	addr                    string
	client                  *http.Client
	before0, before1, after float64 // the counter's readings
	err                     error   // the first failure, if any
}

func newAllocsProbe(addr string) *allocsProbe {
	// No proxy: the scrape must go straight to loopback whatever the
	// environment says.
	return &allocsProbe{addr: addr, client: &http.Client{Transport: &http.Transport{}}}
}

// start takes the two readings before the run.
func (p *allocsProbe) start(ctx context.Context) {
	if p.addr == "" {
		return
	}
	p.before0, p.err = scrapeMallocs(ctx, p.client, p.addr)
	if p.err == nil {
		p.before1, p.err = scrapeMallocs(ctx, p.client, p.addr)
	}
}

// stop takes the reading after the run.
func (p *allocsProbe) stop(ctx context.Context) {
	defer p.client.CloseIdleConnections()
	if p.addr != "" && p.err == nil {
		p.after, p.err = scrapeMallocs(ctx, p.client, p.addr)
	}
}

// fill sets r's allocation fields from the readings and r.Completed,
// warning when they could not be measured.
func (p *allocsProbe) fill(r *record) {
	if p.addr == "" {
		return
	}
	err := p.err
	if err == nil {
		var a float64
		if a, err = allocsPerQuery(p.before0, p.before1, p.after, r.Completed); err == nil {
			r.AllocsPerQ = &a
			return
		}
	}
	r.AllocsErr = err.Error()
	fmt.Fprintf(os.Stderr, "\n!!!!!!!! WARNING: allocations per query of %s in %s rep %d not measured: %v\n\n", r.Impl, r.Scenario, r.Rep, err)
}

// showAllocs formats a run's allocations per query: "-" when the server
// has no Go metrics, "?" when a scrape failed.
func showAllocs(r record) string {
	switch {
	case r.AllocsPerQ != nil:
		return fmtAllocs(*r.AllocsPerQ)
	case r.AllocsErr != "":
		return "?"
	}
	return "-"
}

// fmtAllocs keeps two decimals: a server near zero allocations per query
// still shows what is left.
func fmtAllocs(a float64) string { return fmt.Sprintf("%.2f", a) }
