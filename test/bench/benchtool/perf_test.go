package main

import (
	"maps"
	"strings"
	"testing"
)

const dnsperfOutput = `DNS Performance Testing Tool
Version 2.10.0

[Status] Command line: dnsperf -s 127.0.0.1 -p 44073 -d q.txt -l 2 -v -c 2
[Status] Sending queries (to 127.0.0.1:44073)
> NOERROR n1.example A 0.000111
> NXDOMAIN google.com.svc.cluster.local AAAA 0.000052
> T lost.example. A
> NOERROR n3.example A 0.000200
> SERVFAIL n4.example A 0.001000
[Status] Testing complete (time limit)

Statistics:

  Queries sent:         5
  Queries completed:    4 (80.00%)
  Queries lost:         1 (20.00%)

  Response codes:       NOERROR 2 (50.00%), NXDOMAIN 1 (25.00%), SERVFAIL 1 (25.00%)
  Average packet size:  request 28, response 44
  Run time (s):         2.000144
  Queries per second:   1.999856

  Average Latency (s):  0.000340 (min 0.000052, max 0.001000)
  Latency StdDev (s):   0.000382
`

func TestParseDNSPerf(t *testing.T) {
	res, err := parseDNSPerf(strings.NewReader(dnsperfOutput))
	if err != nil {
		t.Fatal(err)
	}
	if res.sent != 5 || res.completed != 4 || res.lost != 1 || res.qps != 1.999856 {
		t.Errorf("counts: sent %d completed %d lost %d qps %v", res.sent, res.completed, res.lost, res.qps)
	}
	wantLat := []float64{0.000111, 0.000052, 0.000200, 0.001000}
	if len(res.latencies) != len(wantLat) {
		t.Fatalf("latencies %v, want %v", res.latencies, wantLat)
	}
	for i := range wantLat {
		if res.latencies[i] != wantLat[i] {
			t.Errorf("latency %d: %v, want %v", i, res.latencies[i], wantLat[i])
		}
	}
	want := map[string]int64{"NOERROR": 2, "NXDOMAIN": 1, "SERVFAIL": 1}
	if !maps.Equal(res.rcodes, want) {
		t.Errorf("rcodes %v, want %v", res.rcodes, want)
	}
	if _, err := parseDNSPerf(strings.NewReader("[Status] dnsperf: no such file\n")); err == nil {
		t.Error("output without statistics parsed without error")
	}
}

func TestPercentile(t *testing.T) {
	v := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tt := range []struct {
		p    float64
		want float64
	}{{0.5, 5}, {0.99, 10}, {0.1, 1}, {0.11, 2}, {1, 10}} {
		if got := percentile(v, tt.p); got != tt.want {
			t.Errorf("p%v = %v, want %v", tt.p, got, tt.want)
		}
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("empty: %v", got)
	}
}
