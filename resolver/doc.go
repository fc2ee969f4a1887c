// Package resolver is the contract every clusterdns stage implements: the
// Handler interface, the rule that tells which rcodes mean "nothing was
// written yet", chain assembly, per-request helpers and the shared metric
// namespace.
//
// It is a leaf: it imports nothing of ours, so every stage can depend on it
// and no stage needs to depend on another.
package resolver
