// Package frontend is the DNS wire of clusterdns: UDP and TCP listeners that
// turn packets into queries for the resolver chain and replies back into
// packets.
//
// Design constraint: memory and goroutines stay bounded under any flood. Each
// UDP socket has one reader goroutine with a fixed set of read buffers (on
// Linux it takes up to udpBatch queued datagrams per recvmmsg); a TCP
// connection has one reader; a goroutine exists per admitted query only, and
// not even that for what the chain answers without waiting (cache hits, see
// resolver.InlineHandler), which the UDP reader answers itself, sending the
// replies to one read batch together (sendmmsg on Linux). Admission is a
// counting semaphore (Config.MaxInflight) taken before any parsing. Over the
// bound the front end sheds: a UDP packet is dropped without a reply (a reply
// costs as much as the answer we cannot afford and can be spoofed toward a
// victim; the client simply retries), a TCP query gets REFUSED (the peer is
// real and would otherwise wait for its timeout). Both count shed_total.
//
// The front end owns the wire so stages do not have to: it rejects what the
// chain must never see (responses, opcodes other than QUERY, QDCOUNT != 1,
// non-IN classes, EDNS versions other than 0, AXFR/IXFR over UDP), answers ANY
// itself (RFC 8482), recovers panics into SERVFAIL, owns the OPT record toward
// the client, sets RA, truncates to the client's buffer (over UDP at most
// 4096 bytes, against amplification) at a whole-RR boundary with TC, and
// writes the empty reply when a stage returns an error rcode without writing
// (resolver.ClientWrote).
//
// Bytes that cannot be parsed: shorter than a header, or with QR set, get no
// reply at all (never answer a response: it avoids reflection loops). A packet
// with a valid header whose body does not unpack gets a header-only FORMERR
// with the client's ID; it is 12 bytes, never larger than what was received,
// so it cannot amplify.
//
// The per-query path is lean: one allocation holds the parsed request, the
// ResponseWriter, the client address and the query context; replies are packed
// into pooled buffers; metric children are resolved once, at NewMetrics. A
// stage holding a reply already packed (the cache) hands it over as bytes
// (WriteWire): it gets the same shaping as a message, without the packing.
package frontend
