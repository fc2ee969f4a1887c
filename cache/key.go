package cache

import (
	"hash/maphash"
	"strings"

	"github.com/miekg/dns"
)

// key identifies an entry. The DO and CD bits are part of it because they
// change what the rest of the chain answers (RRSIGs, unvalidated data).
type key struct {
	name   string // lower-case FQDN
	qtype  uint16
	qclass uint16
	do, cd bool
}

// keyOf returns the key for r, which holds exactly one question. It does not
// allocate unless the name has upper-case letters.
func keyOf(r *dns.Msg) key {
	q := r.Question[0]
	k := key{name: strings.ToLower(q.Name), qtype: q.Qtype, qclass: q.Qclass, cd: r.CheckingDisabled}
	if o := r.IsEdns0(); o != nil {
		k.do = o.Do()
	}
	return k
}

// hash spreads keys over shards; the seed is per Cache.
func (k key) hash(seed maphash.Seed) uint64 {
	h := maphash.String(seed, k.name)
	h ^= uint64(k.qtype)<<32 | uint64(k.qclass)<<16
	if k.do {
		h ^= 1 << 1
	}
	if k.cd {
		h ^= 1
	}
	return h * 0x9e3779b97f4a7c15 // mix the low bits, which pick the shard
}

// refreshSize is the EDNS0 buffer size of refresh queries, the one the front
// end advertises (the DNS flag day 2020 value).
const refreshSize = 1232

// query builds the request a background refresh sends for k.
func (k key) query() *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(k.name, k.qtype)
	m.Question[0].Qclass = k.qclass
	m.CheckingDisabled = k.cd
	if k.do {
		m.SetEdns0(refreshSize, true)
	}
	return m
}

// cacheable reports whether r is a query the cache may answer or store:
// a plain QUERY with one question, and not a zone transfer (a stream of
// messages, not one reply).
func cacheable(r *dns.Msg) bool {
	if r.Opcode != dns.OpcodeQuery || len(r.Question) != 1 {
		return false
	}
	switch r.Question[0].Qtype {
	case dns.TypeAXFR, dns.TypeIXFR:
		return false
	}
	return true
}

// normalizeZones returns zones as lower-case FQDNs.
func normalizeZones(zones []string) []string {
	out := make([]string, 0, len(zones))
	for _, z := range zones {
		out = append(out, strings.ToLower(dns.Fqdn(z)))
	}
	return out
}

// inZones reports whether the lower-case FQDN name is one of zones or below
// one of them.
func inZones(name string, zones []string) bool {
	for _, z := range zones {
		if z == "." || name == z {
			return true
		}
		if len(name) > len(z) && strings.HasSuffix(name, z) && name[len(name)-len(z)-1] == '.' {
			return true
		}
	}
	return false
}
