package resolver

import (
	"net"
	"strings"

	"github.com/miekg/dns"
)

// Request bundles a query with the facts stages keep asking about it. The
// lowercased name is computed once; strings.ToLower does not allocate when the
// name is already lower case, which is the common case.
type Request struct {
	W   dns.ResponseWriter
	Req *dns.Msg

	name string // lowercased FQDN of the question; "" until Name is called
}

// NewRequest returns a Request for r as received through w. r must hold
// exactly one question (the front end guarantees it).
func NewRequest(w dns.ResponseWriter, r *dns.Msg) Request {
	return Request{W: w, Req: r}
}

// Name is the question name, lower case, fully qualified.
func (r *Request) Name() string {
	if r.name == "" {
		r.name = strings.ToLower(dns.Fqdn(r.Req.Question[0].Name))
	}
	return r.name
}

// QName is the question name as the client spelled it.
func (r *Request) QName() string { return r.Req.Question[0].Name }

// QType is the question type.
func (r *Request) QType() uint16 { return r.Req.Question[0].Qtype }

// QClass is the question class.
func (r *Request) QClass() uint16 { return r.Req.Question[0].Qclass }

// Proto is "udp" or "tcp".
func (r *Request) Proto() string { return Proto(r.W) }

// Family is 1 for IPv4 clients and 2 for IPv6 ones.
func (r *Request) Family() int { return Family(r.W) }

// Do reports whether the client set the DNSSEC OK bit.
func (r *Request) Do() bool {
	if o := r.Req.IsEdns0(); o != nil {
		return o.Do()
	}
	return false
}

// Size is the largest reply the client accepts: 65535 over TCP, otherwise its
// EDNS0 buffer size, never below 512.
func (r *Request) Size() int { return ReplySize(r.W, r.Req) }

// ReplySize is the largest reply the client of r accepts over w.
func ReplySize(w dns.ResponseWriter, r *dns.Msg) int {
	if Proto(w) == "tcp" {
		return dns.MaxMsgSize
	}
	if o := r.IsEdns0(); o != nil {
		if s := int(o.UDPSize()); s > dns.MinMsgSize {
			return s
		}
	}
	return dns.MinMsgSize
}

// Proto is "tcp" when w is a stream connection and "udp" otherwise.
func Proto(w dns.ResponseWriter) string {
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		return "tcp"
	}
	return "udp"
}

// Family is 2 when the client address of w is IPv6, 1 otherwise.
func Family(w dns.ResponseWriter) int {
	var ip net.IP
	switch a := w.RemoteAddr().(type) {
	case *net.UDPAddr:
		ip = a.IP
	case *net.TCPAddr:
		ip = a.IP
	}
	if ip != nil && ip.To4() == nil {
		return 2
	}
	return 1
}
