package kubeindex

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// A list response decoded whole holds the response body and every typed
// object at once: 10,000 EndpointSlices with 100,000 endpoints are about
// 100 MiB of garbage for each initial list and relist, several times what
// the index keeps. readProtoList instead reads the Kubernetes protobuf
// envelope from the stream and decodes one item at a time, so a list costs
// one object of transient memory whatever its size.
//
// The wire format (k8s.io/apimachinery runtime/serializer/protobuf): the
// magic "k8s\x00", then a runtime.Unknown message {1: typeMeta, 2: raw,
// 3: contentEncoding, 4: contentType} whose raw is the list message
// {1: metadata (ListMeta), 2: items (repeated)}.

var protoMagic = []byte{'k', '8', 's', 0}

// errNotProtobuf: the response is not a protobuf envelope (a JSON reply,
// say); the caller lists the ordinary way instead.
var errNotProtobuf = errors.New("kubeindex: list response is not Kubernetes protobuf")

// errBadProtobuf: the response is cut short or malformed.
var errBadProtobuf = errors.New("kubeindex: malformed protobuf list")

// maxProtoField bounds one object of a list: far above what etcd stores
// (1.5 MiB by default), far below what would hurt.
const maxProtoField = 64 << 20

const (
	wireVarint     = 0
	wire64         = 1
	wireBytes      = 2
	wireStartGroup = 3
	wireEndGroup   = 4
	wire32         = 5
)

// protoReader reads protobuf wire data from a stream, counting what it has
// consumed so that nested messages can be bounded.
type protoReader struct {
	r   *bufio.Reader
	off int64
	buf []byte // reused for every field read whole; callers copy out of it
}

func (p *protoReader) ReadByte() (byte, error) {
	b, err := p.r.ReadByte()
	if err == nil {
		p.off++
	}
	return b, err
}

// tag reads a field tag; io.EOF only when the stream ends cleanly before it.
func (p *protoReader) tag() (field uint64, wire int, err error) {
	v, err := binary.ReadUvarint(p)
	if err != nil {
		return 0, 0, err
	}
	return v >> 3, int(v & 7), nil
}

func (p *protoReader) uvarint() (uint64, error) {
	v, err := binary.ReadUvarint(p)
	if err != nil {
		return 0, truncated(err)
	}
	return v, nil
}

// length reads a length prefix that must fit in the limit bytes left.
func (p *protoReader) length(limit int64) (int64, error) {
	n, err := p.uvarint()
	if err != nil {
		return 0, err
	}
	if n > uint64(limit) {
		return 0, fmt.Errorf("%w: field of %d bytes with %d left", errBadProtobuf, n, limit)
	}
	return int64(n), nil
}

// bytes reads n bytes into the reused buffer. The buffer grows with the
// data actually read, so a bogus length in a cut-short stream does not
// allocate what it claims.
func (p *protoReader) bytes(n int64) ([]byte, error) {
	if n > maxProtoField {
		return nil, fmt.Errorf("%w: field of %d bytes", errBadProtobuf, n)
	}
	if int64(cap(p.buf)) >= n {
		b := p.buf[:n]
		if _, err := io.ReadFull(p.r, b); err != nil {
			return nil, truncated(err)
		}
		p.off += n
		return b, nil
	}
	buf := bytes.NewBuffer(p.buf[:0])
	got, err := io.CopyN(buf, p.r, n)
	p.off += got
	p.buf = buf.Bytes()
	if err != nil {
		return nil, truncated(err)
	}
	return p.buf, nil
}

func (p *protoReader) discard(n int64) error {
	d, err := p.r.Discard(int(n))
	p.off += int64(d)
	return truncated(err)
}

// skip passes over a field's value of the given wire type.
func (p *protoReader) skip(wire int, limit int64) error {
	switch wire {
	case wireVarint:
		_, err := p.uvarint()
		return err
	case wire64:
		return p.discard(8)
	case wire32:
		return p.discard(4)
	case wireBytes:
		n, err := p.length(limit)
		if err != nil {
			return err
		}
		return p.discard(n)
	}
	return fmt.Errorf("%w: wire type %d", errBadProtobuf, wire)
}

func truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %w", errBadProtobuf, io.ErrUnexpectedEOF)
	}
	return err
}

// readProtoList reads a protobuf list of kind listKind ("ServiceList") from
// r, calling item for each encoded item (the bytes are only valid during
// the call), and returns the list's metadata. It returns errNotProtobuf,
// having read only the first four bytes, when r holds no protobuf envelope.
func readProtoList(r io.Reader, listKind string, item func([]byte) error) (metav1.ListMeta, error) {
	var meta metav1.ListMeta
	p := &protoReader{r: bufio.NewReaderSize(r, 32<<10)}
	head, err := p.r.Peek(len(protoMagic))
	if err != nil || !bytes.Equal(head, protoMagic) {
		return meta, errNotProtobuf
	}
	if err := p.discard(int64(len(protoMagic))); err != nil {
		return meta, err
	}
	sawRaw := false
	for {
		field, wire, err := p.tag()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return meta, truncated(err)
		}
		switch {
		case field == 1 && wire == wireBytes: // typeMeta
			n, err := p.length(1 << 16)
			if err != nil {
				return meta, err
			}
			b, err := p.bytes(n)
			if err != nil {
				return meta, err
			}
			var tm runtime.TypeMeta
			if err := tm.Unmarshal(b); err != nil {
				return meta, fmt.Errorf("%w: type meta: %w", errBadProtobuf, err)
			}
			if tm.Kind != listKind {
				return meta, fmt.Errorf("%w: got kind %q, want %q", errBadProtobuf, tm.Kind, listKind)
			}
		case field == 2 && wire == wireBytes: // raw: the list itself
			n, err := p.uvarint()
			if err != nil {
				return meta, err
			}
			if meta, err = p.list(int64(n), item); err != nil {
				return meta, err
			}
			sawRaw = true
		case field == 3 && wire == wireBytes: // contentEncoding: none is defined
			n, err := p.length(1 << 10)
			if err != nil {
				return meta, err
			}
			b, err := p.bytes(n)
			if err != nil {
				return meta, err
			}
			if len(b) != 0 {
				return meta, fmt.Errorf("%w: content encoding %q", errBadProtobuf, b)
			}
		default: // contentType, or anything newer
			if err := p.skip(wire, 1<<62); err != nil {
				return meta, err
			}
		}
	}
	if !sawRaw {
		return meta, fmt.Errorf("%w: no list in the envelope", errBadProtobuf)
	}
	return meta, nil
}

// list reads the n bytes of a list message.
func (p *protoReader) list(n int64, item func([]byte) error) (metav1.ListMeta, error) {
	var meta metav1.ListMeta
	end := p.off + n
	for p.off < end {
		field, wire, err := p.tag()
		if err != nil {
			return meta, truncated(err)
		}
		if wire != wireBytes || (field != 1 && field != 2) {
			if err := p.skip(wire, end-p.off); err != nil {
				return meta, err
			}
			continue
		}
		size, err := p.length(end - p.off)
		if err != nil {
			return meta, err
		}
		b, err := p.bytes(size)
		if err != nil {
			return meta, err
		}
		if field == 1 {
			if err := meta.Unmarshal(b); err != nil {
				return meta, fmt.Errorf("%w: list meta: %w", errBadProtobuf, err)
			}
			continue
		}
		if err := item(b); err != nil {
			return meta, err
		}
	}
	if p.off != end {
		return meta, fmt.Errorf("%w: list overruns its length", errBadProtobuf)
	}
	return meta, nil
}

// decodePod decodes from a protobuf Pod only what the pod transform and
// reuseUnchanged read: name, namespace, resourceVersion, phase and IPs. A
// listed Pod decoded whole is several KiB (spec, managedFields, container
// statuses) for the few dozen bytes a storedPod keeps; at 50,000 pods a
// list would churn hundreds of MiB through the heap (the initial list, and
// the pods that changed before a relist: lister.unchanged skips the rest),
// with the GC running behind it and the heap overshooting its goal. Watch
// events still decode whole Pods, one at a time.
//
// Field numbers (k8s.io/api/core/v1/generated.proto): Pod {1: metadata,
// 3: status}; ObjectMeta {1: name, 3: namespace, 6: resourceVersion};
// PodStatus {1: phase, 6: podIP, 12: podIPs}; PodIP {1: ip}. As with the
// generated Unmarshal, the last of a repeated scalar wins.
func decodePod(b []byte) (runtime.Object, error) {
	p := &corev1.Pod{}
	err := eachBytesField(b, func(field uint64, v []byte) error {
		switch field {
		case 1:
			return eachBytesField(v, func(field uint64, v []byte) error {
				switch field {
				case 1:
					p.Name = string(v)
				case 3:
					p.Namespace = string(v)
				case 6:
					p.ResourceVersion = string(v)
				}
				return nil
			})
		case 3:
			return eachBytesField(v, func(field uint64, v []byte) error {
				switch field {
				case 1:
					p.Status.Phase = corev1.PodPhase(v)
				case 6:
					p.Status.PodIP = string(v)
				case 12:
					var ip corev1.PodIP
					err := eachBytesField(v, func(field uint64, v []byte) error {
						if field == 1 {
							ip.IP = string(v)
						}
						return nil
					})
					p.Status.PodIPs = append(p.Status.PodIPs, ip)
					return err
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// peekMeta returns the namespace, name and resourceVersion of an encoded
// object (ObjectMeta is field 1 of every object) without decoding it; the
// slices point into b.
func peekMeta(b []byte) (ns, name, rv []byte, err error) {
	err = eachBytesField(b, func(field uint64, v []byte) error {
		if field != 1 {
			return nil
		}
		return eachBytesField(v, func(field uint64, v []byte) error {
			switch field {
			case 1:
				name = v
			case 3:
				ns = v
			case 6:
				rv = v
			}
			return nil
		})
	})
	return ns, name, rv, err
}

// eachBytesField calls fn with the number and value of each
// length-delimited field of message b, in order, and checks that the other
// fields are well formed. It accepts what the generated (gogo) Unmarshal
// skips, groups included, so that decodePod refuses nothing Unmarshal takes.
func eachBytesField(b []byte, fn func(field uint64, v []byte) error) error {
	depth := 0 // of groups being skipped
	for len(b) > 0 {
		tag, n := gogoVarint(b)
		if n == 0 {
			return fmt.Errorf("%w: bad field tag", errBadProtobuf)
		}
		b = b[n:]
		field := int32(tag >> 3) // as the generated code truncates it
		if depth == 0 && field <= 0 {
			return fmt.Errorf("%w: field number %d", errBadProtobuf, field)
		}
		switch wire := int(tag & 7); wire {
		case wireVarint:
			if _, n = gogoVarint(b); n == 0 {
				return fmt.Errorf("%w: bad varint", errBadProtobuf)
			}
			b = b[n:]
		case wire64, wire32:
			w := 8
			if wire == wire32 {
				w = 4
			}
			if len(b) < w {
				return fmt.Errorf("%w: %w", errBadProtobuf, io.ErrUnexpectedEOF)
			}
			b = b[w:]
		case wireBytes:
			l, n := gogoVarint(b)
			if n == 0 || l > uint64(len(b)-n) {
				return fmt.Errorf("%w: %w", errBadProtobuf, io.ErrUnexpectedEOF)
			}
			v := b[n : n+int(l)]
			b = b[n+int(l):]
			if depth == 0 {
				if err := fn(uint64(field), v); err != nil {
					return err
				}
			}
		case wireStartGroup:
			depth++
		case wireEndGroup:
			if depth == 0 {
				return fmt.Errorf("%w: unexpected end of group", errBadProtobuf)
			}
			depth--
		default:
			return fmt.Errorf("%w: wire type %d", errBadProtobuf, wire)
		}
	}
	if depth != 0 {
		return fmt.Errorf("%w: %w", errBadProtobuf, io.ErrUnexpectedEOF)
	}
	return nil
}

// gogoVarint reads a varint the way the generated code does: at most ten
// bytes, the excess bits of the tenth dropped. n is 0 if b ends first or
// the varint is longer.
func gogoVarint(b []byte) (v uint64, n int) {
	for i := 0; i < 10 && i < len(b); i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i] < 0x80 {
			return v, i + 1
		}
	}
	return 0, 0
}
