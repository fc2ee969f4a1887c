package kubeindex

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/api/meta"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// lister is the ListerWatcher of one informer. Its lists hand the reflector
// stored objects, already transformed, so the typed objects of a list are
// garbage a batch at a time instead of all at once: over a real API client
// it streams the protobuf response (readProtoList), otherwise (fake
// clientsets, a server answering JSON) it transforms the typed list it got.
// Watches are the API's; their events are transformed one by one
// by the informer, as are WatchList streams where the server offers them.
//
// Lists are not paginated on purpose: the reflector lists at
// resourceVersion "0" (where the watch cache ignores a limit anyway) or at
// its last one, which the API server answers from its watch cache without
// touching etcd. A page size with a consistent read would send every page
// after the first to etcd (Kubernetes 1.33 serves continuations from etcd;
// its ListFromCacheSnapshot gate is alpha), from every replica at once after
// an API server restart. Streaming makes the whole list as cheap for us as
// one page. If a server paginates anyway (watch cache off), each page is
// transformed as it arrives.
type lister struct {
	resource string // "services", for errors and logs
	listKind string // "ServiceList": what a protobuf list must carry
	ns       string // "" for all namespaces
	api      API
	str      streamer                  // api's, nil if it cannot stream
	tweak    func(*metav1.ListOptions) // nil: none
	decode   func([]byte) (runtime.Object, error)
	tf       cache.TransformFunc
	log      *slog.Logger
	// known is the informer's store (nil: none): an object it already holds
	// at the listed resourceVersion is taken from it without being decoded.
	known cache.Store
	// listed is told when a whole list (its last page) has been read, or a
	// streaming list's initial events have ended.
	listed func()

	fellBack atomic.Bool // logged the first fallback to a typed list
}

// listBatch is how many decoded objects are transformed together. The
// transforms copy what they keep into fresh, packed allocations
// (packStrings); done per batch, those land next to each other instead of
// one by one amid the decoder's garbage of the same size classes, where each
// would pin a mostly empty span. Measured at 10,000 services and 100,000
// endpoints: 13 MiB of partly used spans instead of 17 (16.7 per object).
// A batch of typed objects is a few hundred KiB.
const listBatch = 256

// listerWatcher wraps l for an informer, keeping client-go's check of
// whether client supports WatchList streams.
func (l *lister) listerWatcher(client any) cache.ListerWatcher {
	return cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc:  l.List,
		WatchFuncWithContext: l.Watch,
	}, client)
}

// List lists the resource and returns a list of stored objects.
func (l *lister) List(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
	if l.tweak != nil {
		l.tweak(&opts)
	}
	var out *metainternalversion.List
	var err error
	if l.str != nil {
		out, err = l.stream(ctx, opts)
		if errors.Is(err, errNotProtobuf) && l.fellBack.CompareAndSwap(false, true) {
			l.log.Info("kubeindex: the API server answered a list without protobuf; listing whole lists instead",
				"resource", l.resource)
		}
	}
	if l.str == nil || errors.Is(err, errNotProtobuf) {
		out, err = l.typed(ctx, opts)
	}
	if err != nil {
		return nil, err
	}
	if out.Continue == "" && l.listed != nil {
		l.listed()
	}
	return out, nil
}

// Watch watches the resource through the API. The watch of a
// streaming list (sendInitialEvents) tells listed when its initial events
// end, as List does at its last page.
func (l *lister) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	if l.tweak != nil {
		l.tweak(&opts)
	}
	w, err := l.api.Watch(ctx, l.resource, l.ns, opts)
	if err != nil || opts.SendInitialEvents == nil || !*opts.SendInitialEvents || l.listed == nil {
		return w, err
	}
	return newStreamWatch(w, l.listed), nil
}

// streamWatch passes on the events of a streaming list's watch and calls
// listed at the bookmark that ends its initial events. Its goroutine ends
// when the inner watch's channel closes, which Stop brings about.
type streamWatch struct {
	in   watch.Interface
	out  chan watch.Event
	stop chan struct{}
	once sync.Once
}

func newStreamWatch(in watch.Interface, listed func()) *streamWatch {
	w := &streamWatch{in: in, out: make(chan watch.Event), stop: make(chan struct{})}
	go w.run(listed)
	return w
}

func (w *streamWatch) run(listed func()) {
	defer close(w.out)
	ended := false
	for ev := range w.in.ResultChan() {
		if !ended && ev.Type == watch.Bookmark {
			if m, err := meta.Accessor(ev.Object); err == nil && m.GetAnnotations()[metav1.InitialEventsAnnotationKey] == "true" {
				ended = true
				listed()
			}
		}
		select {
		case w.out <- ev:
		case <-w.stop:
			return
		}
	}
}

func (w *streamWatch) ResultChan() <-chan watch.Event { return w.out }

func (w *streamWatch) Stop() {
	w.once.Do(func() {
		close(w.stop)
		w.in.Stop()
	})
}

// stream lists over the REST client, decoding and transforming one item at
// a time.
func (l *lister) stream(ctx context.Context, opts metav1.ListOptions) (*metainternalversion.List, error) {
	body, err := l.str.stream(ctx, l.resource, l.ns, opts)
	if err != nil {
		return nil, err // an API status error, as the typed client returns it
	}
	defer func() { _ = body.Close() }()
	var items []runtime.Object
	batch := make([]runtime.Object, 0, listBatch)
	flush := func() {
		for _, o := range batch {
			items = append(items, l.slim(o))
		}
		clear(batch)
		batch = batch[:0]
	}
	lm, err := readProtoList(body, l.listKind, func(b []byte) error {
		obj := l.unchanged(b)
		if obj == nil {
			var err error
			if obj, err = l.decode(b); err != nil {
				return fmt.Errorf("%w: %s item: %w", errBadProtobuf, l.resource, err)
			}
		}
		if batch = append(batch, obj); len(batch) == listBatch {
			flush()
		}
		return nil
	})
	flush()
	if errors.Is(err, errNotProtobuf) {
		_, _ = io.Copy(io.Discard, io.LimitReader(body, 1<<20)) // let the connection be reused if small
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("kubeindex: list %s: %w", l.resource, err)
	}
	return &metainternalversion.List{ListMeta: lm, Items: items}, nil
}

// unchanged returns the stored object of the encoded object b when the
// informer holds it at the same resourceVersion, nil otherwise. A relist
// then decodes only what changed: decoding a Service, EndpointSlice or Pod
// allocates several KiB that are garbage at once (reuseUnchanged would keep
// the stored object anyway), and at 70,000 objects the GC working behind
// that churn is most of what a relist adds to the peak RSS. Like
// reuseUnchanged, it keys on namespace/name and trusts the resourceVersion,
// which changes with every write.
func (l *lister) unchanged(b []byte) runtime.Object {
	if l.known == nil {
		return nil
	}
	ns, name, rv, err := peekMeta(b)
	if err != nil || len(rv) == 0 || len(name) == 0 {
		return nil // decode it: the decoder reports what is wrong
	}
	key := string(name)
	if len(ns) != 0 {
		key = string(ns) + "/" + key
	}
	old, ok, _ := l.known.GetByKey(key)
	if !ok {
		return nil
	}
	m, ok := old.(metav1.Object)
	o, isObj := old.(runtime.Object)
	if !ok || !isObj || m.GetResourceVersion() != string(rv) {
		return nil
	}
	return o
}

// typed lists whole with the API and transforms the result.
func (l *lister) typed(ctx context.Context, opts metav1.ListOptions) (*metainternalversion.List, error) {
	obj, err := l.api.List(ctx, l.resource, l.ns, opts)
	if err != nil {
		return nil, err
	}
	lm, err := meta.ListAccessor(obj)
	if err != nil {
		return nil, fmt.Errorf("kubeindex: list %s: %w", l.resource, err)
	}
	out := &metainternalversion.List{}
	out.ResourceVersion, out.Continue, out.RemainingItemCount = lm.GetResourceVersion(), lm.GetContinue(), lm.GetRemainingItemCount()
	if err := meta.EachListItem(obj, func(o runtime.Object) error {
		out.Items = append(out.Items, l.slim(o))
		return nil
	}); err != nil {
		return nil, fmt.Errorf("kubeindex: list %s: %w", l.resource, err)
	}
	return out, nil
}

// slim transforms one listed object; transforms never fail and return
// stored objects, which are runtime.Objects.
func (l *lister) slim(obj runtime.Object) runtime.Object {
	out, _ := l.tf(obj)
	if o, ok := out.(runtime.Object); ok {
		return o
	}
	return obj
}

// decodeAs returns a decoder of one protobuf-encoded T.
func decodeAs[T any, P interface {
	*T
	runtime.Object
	Unmarshal([]byte) error
}]() func([]byte) (runtime.Object, error) {
	return func(b []byte) (runtime.Object, error) {
		p := P(new(T))
		if err := p.Unmarshal(b); err != nil {
			return nil, err
		}
		return p, nil
	}
}
