package main

import (
	"fmt"
	"io"
	"strings"
)

// The targets of issue 5, each judged on the figure the issue names: for
// throughput that is server CPU per query (QPS stops telling servers apart
// once dnsperf saturates its core), so "QPS >= 2x" is met when clusterdns
// spends at most half the CPU per query; the QPS ratio is shown beside it.

// memOf returns the RSS and peak of impl's sample in phase, 0 when missing.
func memOf(recs []record, impl, phase string) (rss, hwm float64) {
	for _, r := range recs {
		if r.Kind == "mem" && r.Impl == impl && r.Phase == phase {
			rss, hwm = float64(r.RSSKiB), float64(r.HWMKiB)
		}
	}
	return rss, hwm
}

// target is one row of the targets table.
type target struct {
	what     string
	measured string
	met      string // "yes", "no", "n/a" when not measured, "reported" for a figure without a bound
}

func verdict(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

func writeTargets(w io.Writer, recs []record, subject string) {
	if len(filter(recs, func(r record) bool { return r.Impl == subject })) == 0 {
		return // the peers alone: nothing to judge
	}
	sum := summarize(filter(recs, func(r record) bool { return r.Kind == "perf" }))
	var rows []target
	// cpuTarget compares subject and peer CPU per query in scenario sc
	// against the largest allowed ratio.
	cpuTarget := func(what, sc, peer string, maxRatio float64) {
		s, okS := sum[perfKey{sc, subject}]
		p, okP := sum[perfKey{sc, peer}]
		if !okS || !okP || p.cpu == 0 || p.qps == 0 {
			rows = append(rows, target{what, "not measured", "n/a"})
			return
		}
		r := s.cpu / p.cpu
		rows = append(rows, target{what,
			fmt.Sprintf("CPU/query %.2fx (%.1f vs %.1f µs), QPS %.2fx", r, s.cpu, p.cpu, s.qps/p.qps),
			verdict(r <= maxRatio)})
	}
	cpuTarget("cluster answers: >= 2x CoreDNS", "cluster", "coredns", 1/2.0)
	if s, ok := sum[perfKey{"cluster", subject}]; ok && sum[perfKey{"cluster", "coredns"}].p99 > 0 {
		p := sum[perfKey{"cluster", "coredns"}]
		rows = append(rows, target{"cluster answers: p99 latency no worse than CoreDNS",
			fmt.Sprintf("p99 %.2fx (%.3f vs %.3f ms)", s.p99/p.p99, s.p99, p.p99), verdict(s.p99 <= p.p99)})
	} else {
		rows = append(rows, target{"cluster answers: p99 latency no worse than CoreDNS", "not measured", "n/a"})
	}
	cpuTarget("cache hits: >= 1.5x CoreDNS", "hit", "coredns", 1/1.5)
	cpuTarget("cache hits: >= Unbound", "hit", "unbound", 1)
	cpuTarget("cache misses: >= 1.5x CoreDNS", "miss", "coredns", 1/1.5)

	// Junk is answered from the index: every reply NXDOMAIN (a forwarded
	// name would get the stub's NOERROR answer) at no more CPU per query
	// than a cluster answer.
	junk, okJ := sum[perfKey{"junk", subject}]
	cl, okC := sum[perfKey{"cluster", subject}]
	if okJ && okC && cl.cpu > 0 {
		var total int64
		for _, v := range junk.rcodes {
			total += v
		}
		nx := junk.rcodes["NXDOMAIN"] == total && total > 0
		r := junk.cpu / cl.cpu
		// 10% slack: "the same rate" within run-to-run noise.
		rows = append(rows, target{"ndots:5 junk: from the index at the cluster-answer rate, never forwarded",
			fmt.Sprintf("CPU/query %.2fx cluster answers (%.1f vs %.1f µs); all NXDOMAIN: %v", r, junk.cpu, cl.cpu, nx),
			verdict(nx && r <= 1.1)})
	} else {
		rows = append(rows, target{"ndots:5 junk: from the index at the cluster-answer rate, never forwarded", "not measured", "n/a"})
	}

	rows = append(rows, allocsTarget(sum, subject))

	// Steady RSS, after all traffic with both caches full at the same
	// size: right after the initial list a Go server's RSS still holds the
	// list's garbage, which the runtime returns to the OS only gradually.
	over := ""
	if o := objectsOf(recs); o != "" {
		over = "; " + o
	}
	sRSS, _ := memOf(recs, subject, "steady")
	cRSS, _ := memOf(recs, "coredns", "steady")
	if sRSS > 0 && cRSS > 0 {
		rows = append(rows, target{"memory: RSS <= 1/3 of CoreDNS's over the same objects",
			fmt.Sprintf("%.2fx (%s vs %s MiB, steady%s)", sRSS/cRSS, mib(sRSS), mib(cRSS), over), verdict(sRSS/cRSS <= 1/3.0)})
	} else {
		rows = append(rows, target{"memory: RSS <= 1/3 of CoreDNS's over the same objects", "not measured", "n/a"})
	}
	steady, _ := memOf(recs, subject, "steady")
	_, relist := memOf(recs, subject, "relist")
	if steady > 0 && relist > 0 {
		rows = append(rows, target{"memory: peak during a full relist <= 1.3x steady",
			fmt.Sprintf("%.2fx (%s vs %s MiB%s)", relist/steady, mib(relist), mib(steady), over), verdict(relist/steady <= 1.3)})
	} else {
		rows = append(rows, target{"memory: peak during a full relist <= 1.3x steady", "not measured", "n/a"})
	}
	pl := filter(recs, func(r record) bool { return r.Kind == "proglat" && r.Impl == subject })
	if len(pl) > 0 {
		r := pl[len(pl)-1]
		rows = append(rows, target{"DNS programming latency: p99 <= 100 ms at 50 changes/s",
			fmt.Sprintf("p99 %.1f ms over %d changes, %d missed", r.P99ms, r.Changes, r.Missed), verdict(r.P99ms <= 100 && r.Missed == 0)})
	} else {
		rows = append(rows, target{"DNS programming latency: p99 <= 100 ms at 50 changes/s", "not measured", "n/a"})
	}

	fmt.Fprintf(w, "### Targets (issue 5; %s against its peers in this run)\n\n", subject)
	fmt.Fprintln(w, "| target | measured | met |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, t := range rows {
		fmt.Fprintf(w, "| %s | %s | %s |\n", t.what, t.measured, t.met)
	}
	fmt.Fprintln(w)
}

// allocsTarget is the issue's "a count for the whole server path (read to
// write) reported beside CoreDNS's": allocations per query of subject and
// CoreDNS in each scenario both ran, with no bound to meet.
func allocsTarget(sum map[perfKey]perfSummary, subject string) target {
	const what = "allocations, whole server path (read to write): reported beside CoreDNS's"
	var scs, subj, other []string
	for _, sc := range []string{"cluster", "hit", "miss", "junk"} {
		s, okS := sum[perfKey{sc, subject}]
		p, okP := sum[perfKey{sc, "coredns"}]
		if okS && okP {
			scs = append(scs, sc)
			subj = append(subj, s.allocsCell())
			other = append(other, p.allocsCell())
		}
	}
	if len(scs) == 0 {
		return target{what, "not measured", "n/a"}
	}
	return target{what, fmt.Sprintf("%s %s vs CoreDNS %s per query (%s)", subject,
		strings.Join(subj, " / "), strings.Join(other, " / "), strings.Join(scs, " / ")), "reported"}
}
