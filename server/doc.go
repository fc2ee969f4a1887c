// Package server is the clusterdns process: it loads the strict YAML
// configuration, builds the query chain (cache -> kubeindex -> forward, an
// order fixed in code), runs the DNS front end and the /metrics, /health and
// /ready endpoints, and handles reload and graceful shutdown.
//
// Design constraint: a running server is only ever changed by swapping in a
// whole new chain, built off to the side from a validated config snapshot.
// A bad config, a failed rebuild or a stage that does not start leaves the
// running chain untouched; a stage whose config did not change is carried
// over as is, so its state (cache entries, informers) survives the reload.
package server
