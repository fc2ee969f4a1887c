package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// An excerpt of what client_golang's Go collector exposes: neighbours
// sharing the prefix must not match, and large counts come in exponent form.
const metricsText = `# HELP go_memstats_mallocs_total Total number of heap objects allocated, both live and gc-ed. Semantically a counter version for go_memstats_heap_objects gauge.
# TYPE go_memstats_mallocs_total counter
go_memstats_mallocs_total_extra 1
go_memstats_mallocs_total 1.2345678e+07
go_memstats_frees_total 1.2e+07
`

func TestParseMallocs(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       float64
		wantErr    bool
	}{
		{"exponent", metricsText, 12345678, false},
		{"plain with timestamp", "go_memstats_mallocs_total 42 1700000000000\n", 42, false},
		{"missing", "go_memstats_frees_total 3\n", 0, true},
		{"garbage", "go_memstats_mallocs_total many\n", 0, true},
	} {
		got, err := parseMallocs(strings.NewReader(tc.text))
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("%s: got %v, %v; want %v, error %v", tc.name, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestAllocsPerQuery(t *testing.T) {
	// 1000 -> 1100: one scrape costs 100; the run's 100100 less that over
	// 1000 queries.
	if got, err := allocsPerQuery(1000, 1100, 101200, 1000); err != nil || got != 100 {
		t.Errorf("got %v, %v; want 100", got, err)
	}
	// A run allocating less than a scrape: 0, not negative.
	if got, err := allocsPerQuery(1000, 1100, 1150, 1000); err != nil || got != 0 {
		t.Errorf("got %v, %v; want 0", got, err)
	}
	if _, err := allocsPerQuery(1000, 1100, 500, 1000); err == nil {
		t.Error("a counter going backwards gave no error")
	}
	if _, err := allocsPerQuery(1000, 1100, 2000, 0); err == nil {
		t.Error("no answered query gave no error")
	}
}

// The probe against a fake /metrics whose counter grows by 50 per scrape and
// by what the "run" adds; a server without metrics or a broken one leaves
// the record unmeasured (with the reason) and never fails.
func TestAllocsProbe(t *testing.T) {
	var count float64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		count += 50
		fmt.Fprintf(w, "go_memstats_mallocs_total %g\n", count)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	ctx := context.Background()

	p := newAllocsProbe(addr)
	p.start(ctx)
	count += 2000 // the run
	p.stop(ctx)
	r := record{Impl: "clusterdns", Scenario: "hit", Rep: 1, Completed: 1000}
	p.fill(&r)
	if r.AllocsPerQ == nil || *r.AllocsPerQ != 2 || r.AllocsErr != "" {
		t.Errorf("measured: %v %q, want 2", r.AllocsPerQ, r.AllocsErr)
	}
	if got := showAllocs(r); got != "2.00" {
		t.Errorf("showAllocs = %q", got)
	}

	none := record{Completed: 1000}
	p = newAllocsProbe("")
	p.start(ctx)
	p.stop(ctx)
	p.fill(&none)
	if none.AllocsPerQ != nil || none.AllocsErr != "" || showAllocs(none) != "-" {
		t.Errorf("no metrics: %v %q %q", none.AllocsPerQ, none.AllocsErr, showAllocs(none))
	}

	srv.Close()
	bad := record{Completed: 1000}
	p = newAllocsProbe(addr)
	p.start(ctx)
	p.stop(ctx)
	p.fill(&bad)
	if bad.AllocsPerQ != nil || bad.AllocsErr == "" || showAllocs(bad) != "?" {
		t.Errorf("failed scrape: %v %q %q", bad.AllocsPerQ, bad.AllocsErr, showAllocs(bad))
	}

	if _, err := scrapeMallocs(ctx, http.DefaultClient, "192.0.2.1:9153"); err == nil {
		t.Error("a scrape off loopback was allowed")
	}
}

func ptr(f float64) *float64 { return &f }

// The allocs/query column and the targets line: the median over the
// repetitions that measured it, "-" for a server without Go metrics, "?"
// when every scrape failed, the measured count when only some did.
func TestReportAllocs(t *testing.T) {
	perf := func(sc, impl string, rep int, allocs *float64, errMsg string) record {
		return record{Kind: "perf", Scenario: sc, Impl: impl, Rep: rep, QPS: 100, CPUPerQus: 10, Sent: 10, Completed: 10,
			Rcodes: map[string]int64{"NOERROR": 10}, AllocsPerQ: allocs, AllocsErr: errMsg}
	}
	recs := []record{
		perf("cluster", "clusterdns", 1, ptr(1), ""),
		perf("cluster", "coredns", 1, ptr(40), ""),
		perf("cluster", "clusterdns", 2, ptr(3), ""),
		perf("cluster", "coredns", 2, ptr(50), ""),
		perf("hit", "clusterdns", 1, ptr(0.004), ""),
		perf("hit", "coredns", 1, nil, "scrape: connection refused"),
		{Kind: "perf", Scenario: "hit", Impl: "unbound", Rep: 1, QPS: 100, CPUPerQus: 8, Sent: 10, Completed: 10},
		perf("miss", "clusterdns", 1, ptr(5), ""),
		perf("miss", "clusterdns", 2, nil, "scrape: timeout"),
		perf("miss", "coredns", 1, ptr(90), ""),
		perf("miss", "coredns", 2, ptr(100), ""),
	}
	var b strings.Builder
	writeReport(&b, recs, "clusterdns")
	out := b.String()
	for _, want := range []string{
		"| cluster | clusterdns | 2 | 100 | 100-100 | 0.000 | 0.000 | 0 (0.000%) | 10.0 | 2.00 | 0 |",
		"| cluster | coredns | 2 | 100 | 100-100 | 0.000 | 0.000 | 0 (0.000%) | 10.0 | 45.00 | 0 |",
		"| hit | clusterdns | 1 | 100 | 100-100 | 0.000 | 0.000 | 0 (0.000%) | 10.0 | 0.00 | 0 |",
		"| hit | coredns | 1 | 100 | 100-100 | 0.000 | 0.000 | 0 (0.000%) | 10.0 | ? | 0 |",
		"| hit | unbound | 1 | 100 | 100-100 | 0.000 | 0.000 | 0 (0.000%) | 8.0 | - | 0 |",
		// Each peer's target reads its own row.
		"| cache hits: >= Unbound | CPU/query 1.25x (10.0 vs 8.0 µs), QPS 1.00x | no |",
		"| miss | clusterdns | 2 | 100 | 100-100 | 0.000 | 0.000 | 0 (0.000%) | 10.0 | 5.00 (1 of 2 reps) | 0 |",
		"| allocations, whole server path (read to write): reported beside CoreDNS's | clusterdns 2.00 / 0.00 / 5.00 (1 of 2 reps) vs CoreDNS 45.00 / ? / 95.00 per query (cluster / hit / miss) | reported |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}

	var none strings.Builder
	writeReport(&none, recs[:1], "clusterdns")
	if want := "| allocations, whole server path (read to write): reported beside CoreDNS's | not measured | n/a |"; !strings.Contains(none.String(), want) {
		t.Errorf("report without CoreDNS lacks %q:\n%s", want, none.String())
	}
}
