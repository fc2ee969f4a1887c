// Package reliability is clusterdns's fault, flood and resource-exhaustion
// suite: it runs the real binary as a child process against a real control
// plane (test/cluster), fault-injecting upstream stubs and an API proxy, and
// reports per scenario the load offered, answers, SERVFAILs, wrong answers,
// p99 latency, peak RSS and peak goroutines.
//
// Design constraint: every number is measured from outside the server (wire
// replies, /proc of the child, its /metrics), every load is bounded in both
// count and time, and all traffic goes to 127.0.0.1. Assertions are on
// counts and generous bounds, never on tight timings, so a loaded machine
// gives worse numbers, not failures. The same scenarios run short by default
// and with the durations of issue 6 when CLUSTERDNS_RELIABILITY_LONG=1.
//
// The non-test files are the toolkit (load generator, flood, samplers, stub
// upstream, API proxy, report table); the scenarios are the tests.
package reliability
