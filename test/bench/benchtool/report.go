package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// The report: medians over repetitions per scenario and server, with the
// ratio clusterdns/peer on each peer's row. For QPS a ratio above 1 favours
// clusterdns; for CPU per query, latency and memory a ratio below 1 does.

// runReport is the "report" command: the Markdown tables of a results file.
func runReport(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	results := fs.String("results", "", "results file (JSON lines)")
	subject := fs.String("subject", "clusterdns", "the server the ratios are about")
	if err := fs.Parse(args); err != nil {
		return err
	}
	recs, err := readRecords(*results)
	if err != nil {
		return err
	}
	writeReport(os.Stdout, recs, *subject)
	return nil
}

func readRecords(path string) ([]record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open results: %w", err)
	}
	defer f.Close()
	var recs []record
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		recs = append(recs, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(recs) == 0 {
		return nil, errors.New("no results recorded")
	}
	return recs, nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ordered returns the distinct values of key over recs in first-seen order,
// with subject first.
func ordered(recs []record, key func(record) string, subject string) []string {
	var out []string
	for _, r := range recs {
		if k := key(r); !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	slices.SortStableFunc(out, func(a, b string) int {
		return cmp.Compare(b2i(b == subject), b2i(a == subject))
	})
	return out
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ratio formats a/b, or "-" when either is missing.
func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func mib(kib float64) string { return fmt.Sprintf("%.1f", kib/1024) }

func filter(recs []record, keep func(record) bool) []record {
	var out []record
	for _, r := range recs {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

func collect(recs []record, f func(record) float64) []float64 {
	v := make([]float64, len(recs))
	for i, r := range recs {
		v[i] = f(r)
	}
	return v
}

// rcodeMix summarises rcode counts in percent, largest first.
func rcodeMix(sum map[string]int64) string {
	var total int64
	keys := make([]string, 0, len(sum))
	for k, v := range sum {
		keys = append(keys, k)
		total += v
	}
	slices.SortFunc(keys, func(a, b string) int { return cmp.Or(cmp.Compare(sum[b], sum[a]), cmp.Compare(a, b)) })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %.1f%%", k, 100*float64(sum[k])/float64(total))
	}
	return strings.Join(parts, ", ")
}

// perfKey names one scenario and server.
type perfKey struct{ scenario, impl string }

// perfSummary is one scenario and server over its repetitions.
type perfSummary struct {
	n                  int
	qps, cpu, p50, p99 float64 // medians
	other              float64 // median CPU of everything else, % of one core
	qpsMin, qpsMax     float64
	lost, sent         int64 // sums
	rssKiB             int64 // after the last repetition
	rcodes             map[string]int64
	allocs             float64 // median over the repetitions that measured it
	allocsN, allocsBad int     // repetitions measured, and failed to measure
}

// allocsCell formats a summary's allocations per query: "-" when the
// server has no Go metrics (Unbound), "?" when no repetition's scrape
// worked, and how many did when only some did.
func (s perfSummary) allocsCell() string {
	switch {
	case s.allocsN == 0 && s.allocsBad == 0:
		return "-"
	case s.allocsN == 0:
		return "?"
	case s.allocsBad > 0:
		return fmt.Sprintf("%s (%d of %d reps)", fmtAllocs(s.allocs), s.allocsN, s.allocsN+s.allocsBad)
	}
	return fmtAllocs(s.allocs)
}

func summarize(perf []record) map[perfKey]perfSummary {
	out := map[perfKey]perfSummary{}
	for _, sc := range ordered(perf, func(r record) string { return r.Scenario }, "") {
		in := filter(perf, func(r record) bool { return r.Scenario == sc })
		for _, impl := range ordered(in, func(r record) string { return r.Impl }, "") {
			rs := filter(in, func(r record) bool { return r.Impl == impl })
			s := perfSummary{
				n:      len(rs),
				qps:    median(collect(rs, func(r record) float64 { return r.QPS })),
				cpu:    median(collect(rs, func(r record) float64 { return r.CPUPerQus })),
				p50:    median(collect(rs, func(r record) float64 { return r.P50ms })),
				p99:    median(collect(rs, func(r record) float64 { return r.P99ms })),
				other:  median(collect(rs, func(r record) float64 { return r.OtherCPU })),
				qpsMin: slices.Min(collect(rs, func(r record) float64 { return r.QPS })),
				qpsMax: slices.Max(collect(rs, func(r record) float64 { return r.QPS })),
				rssKiB: rs[len(rs)-1].RSSKiB,
				rcodes: map[string]int64{},
			}
			var allocs []float64
			for _, r := range rs {
				switch {
				case r.AllocsPerQ != nil:
					allocs = append(allocs, *r.AllocsPerQ)
				case r.AllocsErr != "":
					s.allocsBad++
				}
				s.lost += r.Lost
				s.sent += r.Sent
				for k, v := range r.Rcodes {
					s.rcodes[k] += v
				}
			}
			s.allocs, s.allocsN = median(allocs), len(allocs)
			out[perfKey{sc, impl}] = s
		}
	}
	return out
}

func writeReport(w io.Writer, recs []record, subject string) {
	writeTargets(w, recs, subject)
	perf := filter(recs, func(r record) bool { return r.Kind == "perf" })
	if len(perf) > 0 {
		sum := summarize(perf)
		fmt.Fprintf(w, "### Throughput (median of repetitions; ratios are %s/peer)\n\n", subject)
		fmt.Fprintln(w, "Other CPU: what everything but the server and dnsperf used during the run (stub, kernel, other users of the"+
			" machine), in % of one core; a high figure or a wide QPS range marks a disturbed run, where CPU/query still holds."+
			" Allocs/query: heap allocations over the whole server path, the Go runtime's go_memstats_mallocs_total scraped"+
			" before and after the run (less one scrape's own) / queries answered; - for a server without it, ? when a scrape failed.")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| scenario | server | reps | QPS | QPS range | p50 ms | p99 ms | lost | CPU µs/query | allocs/query | other CPU % | RSS MiB | rcodes | QPS ratio | CPU/query ratio | p99 ratio |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
		for _, sc := range ordered(perf, func(r record) string { return r.Scenario }, "") {
			in := filter(perf, func(r record) bool { return r.Scenario == sc })
			subj := sum[perfKey{sc, subject}]
			for _, impl := range ordered(in, func(r record) string { return r.Impl }, subject) {
				s := sum[perfKey{sc, impl}]
				qr, cr, pr := "", "", ""
				if impl != subject {
					qr, cr, pr = ratio(subj.qps, s.qps), ratio(subj.cpu, s.cpu), ratio(subj.p99, s.p99)
				}
				fmt.Fprintf(w, "| %s | %s | %d | %.0f | %.0f-%.0f | %.3f | %.3f | %d (%.3f%%) | %.1f | %s | %.0f | %s | %s | %s | %s | %s |\n",
					sc, impl, s.n, s.qps, s.qpsMin, s.qpsMax, s.p50, s.p99, s.lost, 100*float64(s.lost)/float64(max(s.sent, 1)), s.cpu,
					s.allocsCell(), s.other, mib(float64(s.rssKiB)), rcodeMix(s.rcodes), qr, cr, pr)
			}
		}
		fmt.Fprintln(w)
	}

	writeMemory(w, recs, subject)

	pl := filter(recs, func(r record) bool { return r.Kind == "proglat" })
	if len(pl) > 0 {
		fmt.Fprintf(w, "### DNS programming latency (API write returned -> first answer reflecting it; ratios are %s/peer)\n\n", subject)
		fmt.Fprintln(w, "| server | changes | missed | p50 ms | p99 ms | max ms | p99 ratio |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
		var subjP99 float64
		for _, impl := range ordered(pl, func(r record) string { return r.Impl }, subject) {
			for _, r := range filter(pl, func(r record) bool { return r.Impl == impl }) {
				pr := ""
				if impl == subject {
					subjP99 = r.P99ms
				} else {
					pr = ratio(subjP99, r.P99ms)
				}
				fmt.Fprintf(w, "| %s | %d | %d | %.1f | %.1f | %.1f | %s |\n", impl, r.Changes, r.Missed, r.P50ms, r.P99ms, r.MaxMs, pr)
			}
		}
		fmt.Fprintln(w)
	}
}

// Memory phases run.sh samples, each resetting the peak after it: synced
// (objects listed, peak = the initial list), steady (after all traffic, peak
// = during traffic) and relist (after the API server restart forced every
// informer to list again, peak = during that relist).
func writeMemory(w io.Writer, recs []record, subject string) {
	mem := filter(recs, func(r record) bool { return r.Kind == "mem" })
	if len(mem) == 0 {
		return
	}
	get := func(impl, phase string) (rss, hwm float64) { return memOf(mem, impl, phase) }
	show := func(kib float64) string {
		if kib == 0 {
			return "-"
		}
		return mib(kib)
	}
	objs := objectsOf(recs)
	if objs == "" {
		objs = "?"
	}
	fmt.Fprintf(w, "### Memory (MiB, VmRSS and VmHWM from /proc/PID/status; ratios are %s/peer)\n\n", subject)
	fmt.Fprintln(w, "| server | objects held | RSS synced | peak initial list | RSS steady | peak traffic | peak relist | relist peak / steady | RSS ratio synced | RSS ratio steady | relist peak ratio |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
	sSynced, _ := get(subject, "synced")
	sSteady, _ := get(subject, "steady")
	_, sRelist := get(subject, "relist")
	for _, impl := range ordered(mem, func(r record) string { return r.Impl }, subject) {
		synced, initial := get(impl, "synced")
		steady, traffic := get(impl, "steady")
		_, relist := get(impl, "relist")
		r1, r2, r3 := "", "", ""
		if impl != subject {
			r1, r2, r3 = ratio(sSynced, synced), ratio(sSteady, steady), ratio(sRelist, relist)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", impl, objs, show(synced), show(initial),
			show(steady), show(traffic), show(relist), ratio(relist, steady), r1, r2, r3)
	}
	for _, r := range filter(recs, func(r record) bool { return r.Kind == "lists" }) {
		// The API server lists Services itself at start; nothing of its own
		// lists EndpointSlices, so that count is the informers' relists.
		pods := ""
		if podsLoaded(recs) {
			pods = fmt.Sprintf(", pods %d (a list read in pages counts each page)", r.Lists["pods"])
		}
		fmt.Fprintf(w, "\nLIST requests served by the restarted API server: endpointslices %d (one per watching server"+
			" means each relisted; 0 means no relist happened and the relist peak shows none)%s, services %d (includes the API server's own).\n",
			r.Lists["endpointslices"], pods, r.Lists["services"])
	}
	fmt.Fprintln(w)
}

// objectsOf describes the objects the loader created, which every cluster
// server holds: "10000 services, 100000 endpoints, 50000 pods (watched,
// verified)"; "" when the results do not say. run.sh has the servers watch
// Pods in verified mode exactly when it loads some.
func objectsOf(recs []record) string {
	for _, r := range recs {
		if r.Kind != "objects" {
			continue
		}
		o := r.Objects
		pods := "no pods (not watched)"
		if o["pods"] > 0 {
			pods = fmt.Sprintf("%d pods (watched, verified)", o["pods"])
		}
		return fmt.Sprintf("%d services, %d endpoints, %s", o["services"], o["endpoints"], pods)
	}
	return ""
}

// podsLoaded reports whether the loader created Pods.
func podsLoaded(recs []record) bool {
	for _, r := range recs {
		if r.Kind == "objects" && r.Objects["pods"] > 0 {
			return true
		}
	}
	return false
}
