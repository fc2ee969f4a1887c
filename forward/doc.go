// Package forward is the upstream stage, the last handler of the chain: it
// sends what no earlier stage answered to the configured upstream servers.
//
// Design constraint: a bad upstream must cost little and be unable to poison
// answers. Sockets are pooled per upstream and rotated after Config.Expire;
// every upstream query gets a fresh random ID and a reply is accepted only if
// its ID, QR bit and question match (anything else is dropped and counted);
// an upstream that keeps failing is marked down and skipped until a
// background probe sees it answer, so a dead server does not add its timeout
// to every query. Loop probes find upstreams that forward back to us (see
// CheckLoops); those are not used, so a loop cannot amplify, and Ready
// reports them. The stage never writes error replies: on failure it
// returns SERVFAIL (or REFUSED past Config.MaxConcurrent) for the front end
// to write.
package forward
