package kubeindex

import "net/netip"

// The slim objects below are all the index keeps of the API objects. With
// 10,000 services and 100,000 endpoints every field here is paid for a
// hundred thousand times: add one only when an answer needs it, prefer
// netip.Addr over strings, and share slices (ports per EndpointSlice) instead
// of copying them. Store-side code must not import miekg/dns.

// ServiceKind tells how a Service is answered.
type ServiceKind uint8

const (
	// KindClusterIP answers with the service's virtual IPs.
	KindClusterIP ServiceKind = iota
	// KindHeadless (clusterIP None) answers with ready endpoint addresses.
	KindHeadless
	// KindExternalName answers with a CNAME to ExternalName.
	KindExternalName
)

// Port is one service or endpoint port. Name and Protocol are lower case;
// Protocol is "tcp", "udp" or "sctp".
type Port struct {
	Name     string
	Protocol string
	Port     uint16
}

// Service is the DNS-visible part of a core/v1 Service.
type Service struct {
	Namespace string // lower case, interned
	Name      string // lower case
	Kind      ServiceKind
	// ClusterIPs holds one address per family for KindClusterIP; empty
	// otherwise.
	ClusterIPs []netip.Addr
	// ExternalName is the lower-case, fully qualified CNAME target of a
	// KindExternalName service.
	ExternalName string
	Ports        []Port
}

// Endpoint is one ready address of a service. Only ready endpoints (ready
// condition nil or true) are kept.
type Endpoint struct {
	Addr netip.Addr
	// Label names the endpoint under its service: the endpoint hostname, or
	// its pod name under endpointPodNames when that fits a DNS label. Empty
	// means "use the dashed address".
	Label string
	// Ports are the ports of the EndpointSlice the address came from, shared
	// by every endpoint of that slice; never mutated.
	Ports []Port
}

// ServiceView is a service joined with the ready endpoints of all its
// EndpointSlices, de-duplicated by address. A view is immutable once
// published: readers may keep it for the whole query, which is what makes A
// and AAAA for one name come from the same state.
type ServiceView struct {
	Service
	Endpoints []Endpoint
}

// ReverseName is one owner of an address, for PTR answers.
type ReverseName struct {
	Namespace string
	Service   string
	// Endpoint is false for a ClusterIP (the PTR names the service) and true
	// for an endpoint address (the PTR names <label>.<service>).
	Endpoint bool
	// Label of the endpoint; empty means the dashed address.
	Label string
}

// Index is what the DNS side needs from the store. The store implements it;
// handler tests use a map-backed fake.
type Index interface {
	// Synced reports whether every informer has completed its initial list.
	Synced() bool
	// Serial is the zone serial; it changes only when an answer would.
	Serial() uint32
	// HasNamespace reports whether ns exists and is exposed.
	HasNamespace(ns string) bool
	// Service returns the view of ns/name, or nil. ns and name are lower case.
	Service(ns, name string) *ServiceView
	// Reverse returns every owner of addr (ClusterIPs and endpoints of exposed
	// namespaces); nil when none.
	Reverse(addr netip.Addr) []ReverseName
	// HasPod reports whether a pod in ns has addr among its podIPs (only
	// meaningful with pods: verified).
	HasPod(ns string, addr netip.Addr) bool
	// Walk calls fn for every exposed service until fn returns false (AXFR).
	Walk(fn func(*ServiceView) bool)
}
