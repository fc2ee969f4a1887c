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
		{Kind: "objects", Impl: "kube-apiserver", Objects: map[string]int64{"services": 100, "endpoints": 1000, "pods": 500}},
		{Kind: "lists", Impl: "kube-apiserver", Phase: "relist", Lists: map[string]int64{"services": 3, "endpointslices": 2, "pods": 2}},
	}
	var b strings.Builder
	writeReport(&b, recs, "clusterdns")
	out := b.String()
	for _, want := range []string{
		// clusterdns first, median of 300 and 200 QPS, CPU 7.5.
		"| cluster | clusterdns | 2 | 250 | 200-300 | 0.000 | 1.000 | 0 (0.000%) | 7.5 | - | 0 | 0.0 | NOERROR 100.0% |  |  |  |",
		"| cluster | coredns | 1 | 100 | 100-100 | 0.000 | 2.000 | 0 (0.000%) | 20.0 | - | 0 | 0.0 | NOERROR 100.0% | 2.50 | 0.38 | 0.50 |",
		"| clusterdns | 100 services, 1000 endpoints, 500 pods (watched, verified) | 10.0 | 20.0 | 10.0 | 10.0 | 15.0 | 1.50 |  |  |  |",
		"| coredns | 100 services, 1000 endpoints, 500 pods (watched, verified) | 40.0 | 40.0 | 40.0 | 40.0 | - | - | 0.25 | 0.25 | - |",
		"endpointslices 2 (one per watching server",
		"none), pods 2 (a list read in pages counts each page), services 3",
		"| coredns | 10 | 0 | 0.0 | 80.0 | 0.0 | 0.25 |",
		"| cluster answers: >= 2x CoreDNS | CPU/query 0.38x (7.5 vs 20.0 µs), QPS 2.50x | yes |",
		"| cluster answers: p99 latency no worse than CoreDNS | p99 0.50x (1.000 vs 2.000 ms) | yes |",
		"| cache hits: >= 1.5x CoreDNS | not measured | n/a |",
		"| memory: RSS <= 1/3 of CoreDNS's over the same objects | 0.25x (10.0 vs 40.0 MiB, steady; 100 services, 1000 endpoints, 500 pods (watched, verified)) | yes |",
		"| memory: peak during a full relist <= 1.3x steady | 1.50x (15.0 vs 10.0 MiB; 100 services, 1000 endpoints, 500 pods (watched, verified)) | no |",
		"| DNS programming latency: p99 <= 100 ms at 50 changes/s | p99 20.0 ms over 10 changes, 0 missed | yes |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

// Without pods the rows say none were watched and the LIST line leaves pods
// out; results without an objects record (older runs) still render.
func TestReportObjects(t *testing.T) {
	mem := []record{
		{Kind: "mem", Impl: "clusterdns", Phase: "steady", RSSKiB: 10240, HWMKiB: 10240},
		{Kind: "mem", Impl: "coredns", Phase: "steady", RSSKiB: 40960, HWMKiB: 40960},
		{Kind: "lists", Impl: "kube-apiserver", Phase: "relist", Lists: map[string]int64{"services": 3, "endpointslices": 2, "pods": 0}},
	}
	for _, tc := range []struct {
		name    string
		objects []record
		want    []string
		notWant string
	}{
		{"no pods", []record{{Kind: "objects", Objects: map[string]int64{"services": 1000, "endpoints": 10000}}}, []string{
			"| coredns | 1000 services, 10000 endpoints, no pods (not watched) | - | - | 40.0 |",
			"steady; 1000 services, 10000 endpoints, no pods (not watched)) | yes |",
		}, "pods 0"},
		{"no objects record", nil, []string{"| coredns | ? | - | - | 40.0 |", "(10.0 vs 40.0 MiB, steady) | yes |"}, "pods 0"},
	} {
		var b strings.Builder
		writeReport(&b, append(tc.objects, mem...), "clusterdns")
		out := b.String()
		for _, want := range tc.want {
			if !strings.Contains(out, want) {
				t.Errorf("%s: report lacks %q:\n%s", tc.name, want, out)
			}
		}
		if strings.Contains(out, tc.notWant) {
			t.Errorf("%s: report has %q:\n%s", tc.name, tc.notWant, out)
		}
	}
}
