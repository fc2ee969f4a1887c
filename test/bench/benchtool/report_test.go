package main

import (
	"strings"
	"testing"
)

func TestReportRatios(t *testing.T) {
	recs := []record{
		{Kind: "perf", Scenario: "cluster", Impl: "coredns", Rep: 1, QPS: 100, CPUPerQus: 20, P99ms: 2, Sent: 10, Completed: 10, Rcodes: map[string]int64{"NOERROR": 10}},
		{Kind: "perf", Scenario: "cluster", Impl: "clusterdns", Rep: 1, QPS: 300, CPUPerQus: 5, P99ms: 1, Sent: 10, Completed: 10, Rcodes: map[string]int64{"NOERROR": 10}},
		{Kind: "perf", Scenario: "cluster", Impl: "clusterdns", Rep: 2, QPS: 200, CPUPerQus: 10, P99ms: 1, Sent: 10, Completed: 10, Rcodes: map[string]int64{"NOERROR": 10}},
		{Kind: "mem", Impl: "clusterdns", Phase: "synced", RSSKiB: 10240, HWMKiB: 20480},
		{Kind: "mem", Impl: "coredns", Phase: "synced", RSSKiB: 40960, HWMKiB: 40960},
		{Kind: "mem", Impl: "clusterdns", Phase: "steady", RSSKiB: 10240, HWMKiB: 10240},
		{Kind: "mem", Impl: "coredns", Phase: "steady", RSSKiB: 40960, HWMKiB: 40960},
		{Kind: "mem", Impl: "clusterdns", Phase: "relist", RSSKiB: 12288, HWMKiB: 15360},
		{Kind: "proglat", Impl: "clusterdns", Changes: 10, P99ms: 20},
		{Kind: "proglat", Impl: "coredns", Changes: 10, P99ms: 80},
	}
	var b strings.Builder
	writeReport(&b, recs, "clusterdns")
	out := b.String()
	for _, want := range []string{
		// clusterdns first, median of 300 and 200 QPS, CPU 7.5.
		"| cluster | clusterdns | 2 | 250 | 200-300 | 0.000 | 1.000 | 0 (0.000%) | 7.5 | 0 | 0.0 | NOERROR 100.0% |  |  |  |",
		"| cluster | coredns | 1 | 100 | 100-100 | 0.000 | 2.000 | 0 (0.000%) | 20.0 | 0 | 0.0 | NOERROR 100.0% | 2.50 | 0.38 | 0.50 |",
		"| clusterdns | 10.0 | 20.0 | 10.0 | 10.0 | 15.0 | 1.50 |  |  |  |",
		"| coredns | 40.0 | 40.0 | 40.0 | 40.0 | - | - | 0.25 | 0.25 | - |",
		"| coredns | 10 | 0 | 0.0 | 80.0 | 0.0 | 0.25 |",
		"| cluster answers: >= 2x CoreDNS | CPU/query 0.38x (7.5 vs 20.0 µs), QPS 2.50x | yes |",
		"| cluster answers: p99 latency no worse than CoreDNS | p99 0.50x (1.000 vs 2.000 ms) | yes |",
		"| cache hits: >= 1.5x CoreDNS | not measured | n/a |",
		"| memory: RSS <= 1/3 of CoreDNS's over the same objects | 0.25x (10.0 vs 40.0 MiB, steady) | yes |",
		"| memory: peak during a full relist <= 1.3x steady | 1.50x (15.0 vs 10.0 MiB) | no |",
		"| DNS programming latency: p99 <= 100 ms at 50 changes/s | p99 20.0 ms over 10 changes, 0 missed | yes |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
