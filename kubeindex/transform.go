package kubeindex

import (
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// The stored* types are what the informers' caches hold after SetTransform:
// the slim model plus the identity client-go needs (key, resourceVersion).
// They are never mutated once built; the index shares their slices.

// storedService is a transformed core/v1 Service.
type storedService struct {
	metaStub
	rv      string
	created int64 // creationTimestamp in unix nanos, for programming latency
	// skip marks a service that cannot be answered (e.g. an invalid
	// externalName); the index treats it as absent.
	skip bool
	Service
}

// storedSlice is a transformed discovery/v1 EndpointSlice.
type storedSlice struct {
	metaStub
	namespace, name, rv string
	// service is the owning service (kubernetes.io/service-name); "" means
	// the slice is not indexed.
	service string
	trigger int64 // last-change-trigger-time in unix nanos; 0 if absent
	// endpoints are the ready addresses, sorted by address, de-duplicated
	// (first label wins), all sharing one Ports slice.
	endpoints []Endpoint
}

// storedPod is a transformed core/v1 Pod: at most one IP per family.
//
// It carries its informer cache key ("namespace/name") instead of its name,
// and reports it as its name with an empty namespace: client-go keys an
// object with GetNamespace()+"/"+GetName(), a new string every time, and a
// relist keys every pod several times (the FIFO, the replace, the new store
// map, which keeps its keys). With the key as the name, every one of those
// is this string. Nothing reads the pod name on its own.
type storedPod struct {
	metaStub
	namespace, key, rv string
	ips                [2]netip.Addr // zero Addr = unused
}

// storedNamespace is a transformed core/v1 Namespace.
type storedNamespace struct {
	metaStub
	name, rv string
}

// transformer turns API objects into stored objects. Its methods are
// cache.TransformFunc: they run on the reflector goroutines before anything
// is stored, return already-transformed input unchanged (client-go may call
// a transform twice) and never fail, since a failing transform would make a
// whole list fail and the informer never sync.
type transformer struct {
	log      *slog.Logger
	metrics  *Metrics
	podNames bool // Config.EndpointPodNames
	strs     interner
}

func (t *transformer) skip(kind, reason, ns, name string, args ...any) {
	t.metrics.skipped.WithLabelValues(kind, reason).Inc()
	t.log.Debug("kubeindex: skipped", append([]any{"kind", kind, "reason", reason, "namespace", ns, "name", name}, args...)...)
}

func (t *transformer) service(obj any) (any, error) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return obj, nil
	}
	st := t.newService(svc)
	packStrings(&st.Name, &st.rv)
	return st, nil
}

func (t *transformer) newService(svc *corev1.Service) *storedService {
	st := &storedService{rv: svc.ResourceVersion}
	if !svc.CreationTimestamp.IsZero() {
		st.created = svc.CreationTimestamp.UnixNano()
	}
	st.Namespace = t.strs.get(strings.ToLower(svc.Namespace))
	st.Name = strings.ToLower(svc.Name)
	switch {
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		st.Kind = KindExternalName
		target := strings.TrimSuffix(strings.ToLower(svc.Spec.ExternalName), ".")
		if !validDomainName(target) {
			t.skip(resServices, "invalid_external_name", svc.Namespace, svc.Name, "externalName", svc.Spec.ExternalName)
			st.skip = true
			return st
		}
		st.ExternalName = target + "."
	case svc.Spec.ClusterIP == corev1.ClusterIPNone:
		st.Kind = KindHeadless
	default:
		st.Kind = KindClusterIP
		ips := svc.Spec.ClusterIPs
		if len(ips) == 0 && svc.Spec.ClusterIP != "" {
			ips = []string{svc.Spec.ClusterIP}
		}
		for _, s := range ips {
			a, err := netip.ParseAddr(s)
			if err != nil || a.Zone() != "" {
				t.skip(resServices, "invalid_ip", svc.Namespace, svc.Name, "ip", s)
				continue
			}
			st.ClusterIPs = append(st.ClusterIPs, a)
		}
	}
	if n := len(svc.Spec.Ports); n > 0 {
		st.Ports = make([]Port, 0, n)
		for _, p := range svc.Spec.Ports {
			if p.Port < 1 || p.Port > 65535 {
				t.skip(resServices, "invalid_port", svc.Namespace, svc.Name, "port", p.Port)
				continue
			}
			st.Ports = append(st.Ports, t.port(p.Name, p.Protocol, p.Port))
		}
	}
	return st
}

func (t *transformer) port(name string, proto corev1.Protocol, port int32) Port {
	pr := strings.ToLower(string(proto))
	if pr == "" {
		pr = "tcp"
	}
	return Port{Name: t.strs.get(strings.ToLower(name)), Protocol: t.strs.get(pr), Port: uint16(port)}
}

func (t *transformer) slice(obj any) (any, error) {
	es, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return obj, nil
	}
	st := t.newSlice(es)
	packStrings(&st.name, &st.rv, &st.service)
	packLabels(st.endpoints)
	return st, nil
}

func (t *transformer) newSlice(es *discoveryv1.EndpointSlice) *storedSlice {
	st := &storedSlice{namespace: t.strs.get(strings.ToLower(es.Namespace)), name: es.Name, rv: es.ResourceVersion}
	svc := es.Labels[discoveryv1.LabelServiceName]
	switch {
	case svc == "":
		t.skip(resEndpointSlices, "no_service_label", es.Namespace, es.Name)
		return st
	case es.AddressType == discoveryv1.AddressTypeFQDN:
		t.skip(resEndpointSlices, "fqdn_address_type", es.Namespace, es.Name)
		return st
	}
	st.service = strings.ToLower(svc)
	if s := es.Annotations[corev1.EndpointsLastChangeTriggerTime]; s != "" {
		if tt, err := time.Parse(time.RFC3339Nano, s); err == nil {
			st.trigger = tt.UnixNano()
		}
	}
	var ports []Port
	for _, p := range es.Ports {
		if p.Port == nil || *p.Port < 1 || *p.Port > 65535 {
			continue // "all ports" or invalid: nothing an SRV record can say
		}
		var name string
		if p.Name != nil {
			name = *p.Name
		}
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		if ports == nil {
			ports = make([]Port, 0, len(es.Ports))
		}
		ports = append(ports, t.port(name, proto, *p.Port))
	}
	n := 0 // exact size: the endpoints are retained for the slice's lifetime
	for i := range es.Endpoints {
		if ready(&es.Endpoints[i]) {
			n += len(es.Endpoints[i].Addresses)
		}
	}
	if n == 0 {
		return st
	}
	eps := make([]Endpoint, 0, n)
	for i := range es.Endpoints {
		ep := &es.Endpoints[i]
		if !ready(ep) {
			continue
		}
		label := t.endpointLabel(es, ep)
		for _, s := range ep.Addresses {
			a, err := netip.ParseAddr(s)
			if err != nil || a.Zone() != "" {
				t.skip(kindEndpoints, "invalid_ip", es.Namespace, es.Name, "ip", s)
				continue
			}
			eps = append(eps, Endpoint{Addr: a, Label: label, Ports: ports})
		}
	}
	st.endpoints = sortDedup(eps)
	return st
}

// ready tells whether an endpoint counts: conditions.ready nil or true (this
// is how publishNotReadyAddresses reaches DNS).
func ready(ep *discoveryv1.Endpoint) bool {
	return ep.Conditions.Ready == nil || *ep.Conditions.Ready
}

// sortDedup sorts eps by address keeping input order among equal addresses,
// then keeps the first of each address. It returns nil for no endpoints.
func sortDedup(eps []Endpoint) []Endpoint {
	if len(eps) == 0 {
		return nil
	}
	slices.SortStableFunc(eps, func(a, b Endpoint) int { return a.Addr.Compare(b.Addr) })
	return slices.CompactFunc(eps, func(a, b Endpoint) bool { return a.Addr == b.Addr })
}

// endpointLabel is the endpoint's name under its service: its hostname, or
// its pod's name under endpointPodNames; "" means the dashed address.
func (t *transformer) endpointLabel(es *discoveryv1.EndpointSlice, ep *discoveryv1.Endpoint) string {
	if ep.Hostname != nil && *ep.Hostname != "" {
		h := strings.ToLower(*ep.Hostname)
		if validHostLabel(h) {
			return h
		}
		t.skip(kindEndpoints, "invalid_hostname", es.Namespace, es.Name, "hostname", *ep.Hostname)
		return ""
	}
	if t.podNames && ep.TargetRef != nil && ep.TargetRef.Kind == "Pod" {
		n := strings.ToLower(ep.TargetRef.Name)
		if validHostLabel(n) {
			return n
		}
		t.skip(kindEndpoints, "pod_name_not_label", es.Namespace, es.Name, "pod", ep.TargetRef.Name)
	}
	return ""
}

func (t *transformer) pod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	st := t.newPod(p)
	packStrings(&st.key, &st.rv)
	return st, nil
}

func (t *transformer) newPod(p *corev1.Pod) *storedPod {
	st := &storedPod{namespace: t.strs.get(strings.ToLower(p.Namespace)), key: p.Name, rv: p.ResourceVersion}
	if p.Namespace != "" {
		st.key = p.Namespace + "/" + p.Name // cache.ObjectName's String
	}
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return st // a finished pod's IPs may already belong to another pod
	}
	n := 0
	add := func(s string) {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			t.skip(resPods, "invalid_ip", p.Namespace, p.Name, "ip", s)
			return
		}
		if n < len(st.ips) && (n == 0 || st.ips[0] != a) {
			st.ips[n] = a
			n++
		}
	}
	for _, ip := range p.Status.PodIPs {
		add(ip.IP)
	}
	if len(p.Status.PodIPs) == 0 && p.Status.PodIP != "" {
		add(p.Status.PodIP)
	}
	return st
}

func (t *transformer) namespace(obj any) (any, error) {
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return obj, nil
	}
	return &storedNamespace{name: t.strs.get(strings.ToLower(ns.Name)), rv: ns.ResourceVersion}, nil
}

// validHostLabel reports whether s is a lower-case RFC 1123 label.
func validHostLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// validDomainName reports whether s (lower case, no trailing dot) can be a
// CNAME target: labels of 1-63 letters, digits, '-' or '_', at most 253
// characters in all.
func validDomainName(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for l := range strings.SplitSeq(s, ".") {
		if len(l) == 0 || len(l) > 63 {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '_' {
				return false
			}
		}
	}
	return true
}
