// Package cache is the response cache stage, the first of the chain.
//
// Its design constraint is the hit path: a hit must cost one shard lock and,
// written to the front end, no allocation, and must never hand out or mutate
// what is stored. Entries keep the reply packed (see wire.go) with its insert
// time and TTL; every hit patches a copy of the bytes, so its TTLs are what
// is left and a client never sees a TTL longer than the entry has to live.
//
// What is cached: NOERROR answers, NXDOMAIN and NODATA with the negative TTL of
// RFC 2308, and SERVFAIL for a short while. Never: truncated replies,
// REFUSED/FORMERR/NOTIMP, replies whose question does not match the query,
// and, unless configured, names under the cluster zone (the index answers
// those from memory already, and a cached copy would only go stale).
package cache
