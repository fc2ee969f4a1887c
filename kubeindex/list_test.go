package kubeindex

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
)

// fakeAPI is a loopback HTTP server answering lists the way kube-apiserver
// does: protobuf to a client that accepts it (JSON with json set), watches
// that stay open without events, and 422 to a streaming list
// (sendInitialEvents), as Kubernetes 1.33 does with its defaults.
type fakeAPI struct {
	lists map[string]runtime.Object // by URL path
	json  bool                      // answer lists in JSON
	fail  *apierrors.StatusError    // when set, every list fails with it
	// once encodes each list once and keeps the bytes: the server's own
	// encoding then stays out of a benchmark's heap figures.
	once bool

	// expire is how many more watches end at once with 410 Gone, which
	// makes the informer relist.
	expire atomic.Int32

	mu      sync.Mutex
	cut     chan struct{}     // closed to end the open watches; guarded by mu
	encoded map[string][]byte // with once: by content type and path; guarded by mu
	queries []url.Values      // of each list, guarded by mu
	accepts []string          // Accept header of each list, guarded by mu
	n       atomic.Int32      // lists served
}

var fakeAPIPaths = map[string]schema.GroupVersion{
	"/api/v1/namespaces":                       corev1.SchemeGroupVersion,
	"/api/v1/services":                         corev1.SchemeGroupVersion,
	"/api/v1/pods":                             corev1.SchemeGroupVersion,
	"/apis/discovery.k8s.io/v1/endpointslices": discoveryv1.SchemeGroupVersion,
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("watch") == "true" || q.Get("watch") == "1" {
		if q.Get("sendInitialEvents") == "true" {
			f.status(w, apierrors.NewInvalid(schema.GroupKind{Kind: "ListOptions"}, "", nil))
			return
		}
		if f.expire.Add(-1) >= 0 {
			w.Header().Set("Content-Type", "application/json;stream=watch")
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, `{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Expired","code":410}}`+"\n")
			return
		}
		w.Header().Set("Content-Type", "application/vnd.kubernetes.protobuf;stream=watch")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select { // no events; the client closes it, or cutWatches
		case <-r.Context().Done():
		case <-f.cutCh():
		}
		return
	}
	f.mu.Lock()
	f.queries = append(f.queries, q)
	f.accepts = append(f.accepts, r.Header.Get("Accept"))
	f.mu.Unlock()
	f.n.Add(1)
	if f.fail != nil {
		f.status(w, f.fail)
		return
	}
	obj, gv := f.lists[r.URL.Path], fakeAPIPaths[r.URL.Path]
	if obj == nil {
		f.status(w, apierrors.NewNotFound(schema.GroupResource{}, r.URL.Path))
		return
	}
	ctype, enc := "application/vnd.kubernetes.protobuf", scheme.Codecs.EncoderForVersion(protobufSerializer(), gv)
	if f.json || !strings.Contains(r.Header.Get("Accept"), "protobuf") {
		ctype, enc = "application/json", scheme.Codecs.LegacyCodec(gv)
	}
	f.mu.Lock()
	b := f.encoded[ctype+r.URL.Path]
	f.mu.Unlock()
	if b == nil {
		var err error
		if b, err = runtime.Encode(enc, obj); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if f.once {
			f.mu.Lock()
			f.encoded[ctype+r.URL.Path] = b
			f.mu.Unlock()
		}
	}
	w.Header().Set("Content-Type", ctype)
	_, _ = w.Write(b)
}

func (f *fakeAPI) cutCh() chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut == nil {
		f.cut = make(chan struct{})
	}
	return f.cut
}

// cutWatches ends every open watch, as an API server restart does.
func (f *fakeAPI) cutWatches() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut != nil {
		close(f.cut)
	}
	f.cut = make(chan struct{})
}

func (f *fakeAPI) status(w http.ResponseWriter, err *apierrors.StatusError) {
	st := err.ErrStatus
	st.APIVersion, st.Kind = "v1", "Status"
	b, _ := runtime.Encode(scheme.Codecs.LegacyCodec(corev1.SchemeGroupVersion), &st)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(int(st.Code))
	_, _ = w.Write(b)
}

func (f *fakeAPI) lastQuery() (url.Values, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.queries) == 0 {
		return nil, ""
	}
	return f.queries[len(f.queries)-1], f.accepts[len(f.accepts)-1]
}

// start serves f on loopback until the test ends and returns a client of
// it configured as NewClient configures one (protobuf first).
func (f *fakeAPI) start(t testing.TB) API {
	t.Helper()
	f.encoded = make(map[string][]byte)
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	rc := &rest.Config{Host: srv.URL}
	rc.ContentType = runtime.ContentTypeProtobuf
	rc.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	api, err := newRESTAPI(rc)
	if err != nil {
		t.Fatal(err)
	}
	return api
}

// apiLists sorts objs into the lists fakeAPI serves.
func apiLists(objs []runtime.Object) map[string]runtime.Object {
	meta := metav1.ListMeta{ResourceVersion: "10"}
	nss, svcs := &corev1.NamespaceList{ListMeta: meta}, &corev1.ServiceList{ListMeta: meta}
	slices, pods := &discoveryv1.EndpointSliceList{ListMeta: meta}, &corev1.PodList{ListMeta: meta}
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.Namespace:
			nss.Items = append(nss.Items, *o)
		case *corev1.Service:
			svcs.Items = append(svcs.Items, *o)
		case *discoveryv1.EndpointSlice:
			slices.Items = append(slices.Items, *o)
		case *corev1.Pod:
			pods.Items = append(pods.Items, *o)
		}
	}
	return map[string]runtime.Object{
		"/api/v1/namespaces":                       nss,
		"/api/v1/services":                         svcs,
		"/apis/discovery.k8s.io/v1/endpointslices": slices,
		"/api/v1/pods":                             pods,
	}
}

func testAPIObjects(n int) map[string]runtime.Object {
	objs := []runtime.Object{testNamespace("ns")}
	for i := range n {
		name := fmt.Sprintf("svc-%d", i)
		objs = append(objs, testService("ns", name, fmt.Sprintf("10.0.%d.%d", i/256, i%256)),
			testSlice("ns", name+"-x", name, discoveryv1.AddressTypeIPv4, tep(fmt.Sprintf("10.2.%d.%d", i/256, i%256)).host("h")))
	}
	return apiLists(objs)
}

// serviceLister is the services lister a Store builds over cs.
func serviceLister(api API, listed func()) *lister {
	tr := &transformer{log: slog.New(slog.DiscardHandler), metrics: NewMetrics(nil)}
	str, _ := api.(streamer)
	l := &lister{resource: resServices, listKind: "ServiceList", api: api, str: str, decode: decodeAs[corev1.Service]()}
	l.tf, l.log, l.listed = tr.service, slog.New(slog.DiscardHandler), listed
	return l
}

func TestListerStreamsProtobuf(t *testing.T) {
	for _, useJSON := range []bool{false, true} {
		t.Run(fmt.Sprintf("json=%v", useJSON), func(t *testing.T) {
			objs := testAPIObjects(3)
			objs["/api/v1/services"].(*corev1.ServiceList).Continue = "page-2"
			api := &fakeAPI{lists: objs, json: useJSON}
			var listed atomic.Int32
			l := serviceLister(api.start(t), func() { listed.Add(1) })
			l.tweak = func(o *metav1.ListOptions) { o.LabelSelector = "app=web" }

			obj, err := l.List(t.Context(), metav1.ListOptions{ResourceVersion: "0", Limit: 500})
			if err != nil {
				t.Fatal(err)
			}
			list, ok := obj.(*metainternalversion.List)
			if !ok || list.ResourceVersion != "10" || list.Continue != "page-2" || len(list.Items) != 3 {
				t.Fatalf("list = %#v", obj)
			}
			for i, it := range list.Items {
				st, ok := it.(*storedService)
				if !ok || st.Name != fmt.Sprintf("svc-%d", i) || st.Namespace != "ns" || st.rv != "1" || len(st.ClusterIPs) != 1 {
					t.Errorf("item %d = %#v, want a stored service", i, it)
				}
			}
			q, accept := api.lastQuery()
			if q.Get("resourceVersion") != "0" || q.Get("limit") != "500" || q.Get("labelSelector") != "app=web" {
				t.Errorf("list query %v lacks the options", q)
			}
			if !strings.HasPrefix(accept, runtime.ContentTypeProtobuf) {
				t.Errorf("Accept %q: protobuf not asked first", accept)
			}
			if want := int32(1 + btoi(useJSON)); api.n.Load() != want {
				t.Errorf("%d list requests, want %d (a JSON answer is listed again the typed way)", api.n.Load(), want)
			}
			if listed.Load() != 0 {
				t.Error("listed() called for a page with a continue token")
			}

			objs["/api/v1/services"].(*corev1.ServiceList).Continue = ""
			if _, err := l.List(t.Context(), metav1.ListOptions{}); err != nil {
				t.Fatal(err)
			}
			if listed.Load() != 1 {
				t.Errorf("listed() called %d times after the last page, want 1", listed.Load())
			}
		})
	}
}

func btoi(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

func TestListerErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		fail *apierrors.StatusError
		is   func(error) bool
	}{
		{"expired", apierrors.NewResourceExpired("too old resource version"), apierrors.IsResourceExpired},
		{"forbidden", apierrors.NewForbidden(schema.GroupResource{Resource: "services"}, "", errors.New("rbac")), apierrors.IsForbidden},
	} {
		t.Run(c.name, func(t *testing.T) {
			api := &fakeAPI{lists: testAPIObjects(1), fail: c.fail}
			var listed atomic.Int32
			l := serviceLister(api.start(t), func() { listed.Add(1) })
			_, err := l.List(t.Context(), metav1.ListOptions{})
			if !c.is(err) {
				t.Errorf("err = %v: the API status is lost", err)
			}
			if listed.Load() != 0 {
				t.Error("listed() called for a failed list")
			}
		})
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	l := serviceLister((&fakeAPI{lists: testAPIObjects(1)}).start(t), nil)
	if _, err := l.List(ctx, metav1.ListOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled list: err = %v", err)
	}
}

// TestStoreOverHTTP runs a Store against the loopback API server, with
// protobuf (streamed) and JSON (typed) lists: the same index either way.
func TestStoreOverHTTP(t *testing.T) {
	for _, useJSON := range []bool{false, true} {
		t.Run(fmt.Sprintf("json=%v", useJSON), func(t *testing.T) {
			api := &fakeAPI{lists: testAPIObjects(50), json: useJSON}
			s := startStore(t, testConfig(), api.start(t), nil)
			for i := range 50 {
				v := s.Service("ns", fmt.Sprintf("svc-%d", i))
				want := fmt.Sprintf("10.2.%d.%d h", i/256, i%256)
				if got := endpointsOf(v); len(got) != 1 || got[0] != want {
					t.Fatalf("svc-%d endpoints = %v, want [%s]", i, got, want)
				}
			}
			if !s.HasNamespace("ns") {
				t.Error("namespace missing")
			}
		})
	}
}

func TestReuseUnchanged(t *testing.T) {
	tr := &transformer{log: slog.New(slog.DiscardHandler), metrics: NewMetrics(nil)}
	store := cache.NewStore(cache.DeletionHandlingMetaNamespaceKeyFunc)
	tf := reuseUnchanged(store, tr.service)
	first, _ := tf(testService("ns", "web", "10.0.0.1"))
	if err := store.Add(first); err != nil {
		t.Fatal(err)
	}
	if again, _ := tf(testService("ns", "web", "10.0.0.1")); again != first {
		t.Error("same resourceVersion: a new object instead of the stored one")
	}
	changed := testService("ns", "web", "10.0.0.2")
	changed.ResourceVersion = "2"
	if next, _ := tf(changed); next == first || next.(*storedService).ClusterIPs[0] != netip.MustParseAddr("10.0.0.2") {
		t.Errorf("new resourceVersion: got %+v, want the new object", next)
	}
	if other, _ := tf(testService("other", "web", "10.0.0.1")); other == first {
		t.Error("another namespace's object reused")
	}
	if st, _ := tf(first); st != first {
		t.Error("a stored object is not passed through")
	}
}

// TestStoreRelistReusesObjects: a relist of unchanged objects leaves the
// informer cache and the index holding the very same objects.
func TestStoreRelistReusesObjects(t *testing.T) {
	api := &fakeAPI{lists: testAPIObjects(5)}
	s := startStore(t, testConfig(), api.start(t), nil)
	stores := map[string]cache.Store{}
	for _, w := range s.watched {
		stores[w.resource] = w.inf.GetStore()
	}
	get := func(res, key string) any {
		obj, ok, _ := stores[res].GetByKey(key)
		if !ok {
			t.Fatalf("%s %s missing", res, key)
		}
		return obj
	}
	svc, slice, view := get(resServices, "ns/svc-1"), get(resEndpointSlices, "ns/svc-1-x"), s.Service("ns", "svc-1")

	lists := api.n.Load()
	api.expire.Store(4) // the next watches end with 410 Gone: relists
	api.cutWatches()
	storeEventually(t, "relists", func() bool { return api.n.Load() >= lists+4 })
	api.expire.Store(0)
	if get(resServices, "ns/svc-1") != svc || get(resEndpointSlices, "ns/svc-1-x") != slice || s.Service("ns", "svc-1") != view {
		t.Error("relisted objects replaced by identical copies")
	}
	if v := s.Service("ns", "svc-4"); v == nil || len(v.Endpoints) != 1 {
		t.Errorf("svc-4 after relists: %+v", v)
	}
}

// initialEventsEnd is the bookmark that ends a streaming list's initial
// events, as an object of the watched type.
func initialEventsEnd(obj runtime.Object, rv string) runtime.Object {
	b := obj.DeepCopyObject()
	m, _ := meta.Accessor(b)
	m.SetName("")
	m.SetNamespace("")
	m.SetResourceVersion(rv)
	m.SetAnnotations(map[string]string{metav1.InitialEventsAnnotationKey: "true"})
	return b
}

// TestStoreStreamingList serves every informer a streaming list (a watch
// with sendInitialEvents): the store syncs without a single LIST, releases
// once after the sync, and once more after a second streaming list (the
// reflector streams again when its watch ends).
func TestStoreStreamingList(t *testing.T) {
	objs := map[string][]runtime.Object{
		resNamespaces:     {testNamespace("ns")},
		resServices:       {testService("ns", "web", "10.0.0.1")},
		resEndpointSlices: {testSlice("ns", "web-1", "web", discoveryv1.AddressTypeIPv4, tep("10.2.0.1"))},
		resPods:           {testPod("ns", "p", "10.2.0.1")},
	}
	cs := fake.NewClientset()
	var lists, streams atomic.Int32
	var mu sync.Mutex
	open := map[string]*watch.FakeWatcher{}
	cs.PrependReactor("list", "*", func(k8stesting.Action) (bool, runtime.Object, error) {
		lists.Add(1)
		return false, nil, nil
	})
	cs.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		wa, ok := a.(k8stesting.WatchActionImpl)
		if !ok || wa.GetListOptions().SendInitialEvents == nil {
			return false, nil, nil
		}
		streams.Add(1)
		res := a.GetResource().Resource
		fw := watch.NewFakeWithChanSize(len(objs[res])+1, false)
		for _, o := range objs[res] {
			fw.Add(o)
		}
		fw.Action(watch.Bookmark, initialEventsEnd(objs[res][0], "10"))
		mu.Lock()
		open[res] = fw
		mu.Unlock()
		return true, fw, nil
	})
	s := NewStore(testConfig(), apiOf(noWatchListSemantics{cs}), StoreOptions{})
	var freed atomic.Int32
	s.rel.free = func() { freed.Add(1) }
	s.rel.every = 0
	runStore(t, s)
	if v := s.Service("ns", "web"); v == nil || len(v.Endpoints) != 1 || !s.HasNamespace("ns") || !s.HasPod("ns", netip.MustParseAddr("10.2.0.1")) {
		t.Fatal("index incomplete after the streaming lists")
	}
	if lists.Load() != 0 || streams.Load() != 4 {
		t.Errorf("%d lists and %d streaming lists, want 0 and 4", lists.Load(), streams.Load())
	}
	storeEventually(t, "a release after the sync", func() bool { return freed.Load() == 1 })

	mu.Lock()
	open[resServices].Stop() // the reflector streams the services again
	mu.Unlock()
	storeEventually(t, "a release after the second streaming list", func() bool { return freed.Load() == 2 })
	if streams.Load() != 5 || lists.Load() != 0 {
		t.Errorf("%d streaming lists and %d lists, want 5 and 0", streams.Load(), lists.Load())
	}
}

// TestListerSkipsDecodingUnchanged: a streamed list takes an object the
// informer holds at the same resourceVersion from its store, undecoded, and
// decodes the others (changed, new, or under another namespace).
func TestListerSkipsDecodingUnchanged(t *testing.T) {
	objs := testAPIObjects(4)
	svcs := objs["/api/v1/services"].(*corev1.ServiceList)
	svcs.Items[2].Namespace = "other"
	api := &fakeAPI{lists: objs}
	l := serviceLister(api.start(t), nil)
	var decoded []string
	dec := l.decode
	l.decode = func(b []byte) (runtime.Object, error) {
		o, err := dec(b)
		if err == nil {
			decoded = append(decoded, o.(*corev1.Service).Name)
		}
		return o, err
	}
	l.known = cache.NewStore(cache.MetaNamespaceKeyFunc)
	held := map[string]any{}
	for i, rv := range []string{"1", "0", "1"} { // svc-1 changed since; svc-2 held under ns
		svc := testService("ns", fmt.Sprintf("svc-%d", i), "10.9.9.9")
		svc.ResourceVersion = rv
		st, _ := l.tf(svc)
		held[svc.Name] = st
		if err := l.known.Add(st); err != nil {
			t.Fatal(err)
		}
	}

	obj, err := l.List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	items := obj.(*metainternalversion.List).Items
	if len(items) != 4 {
		t.Fatalf("%d items, want 4", len(items))
	}
	if items[0] != held["svc-0"] {
		t.Errorf("svc-0 = %#v, want the held object", items[0])
	}
	if want := []string{"svc-1", "svc-2", "svc-3"}; !slices.Equal(decoded, want) {
		t.Errorf("decoded %v, want %v", decoded, want)
	}
	for i, it := range items[1:] {
		if it == held[fmt.Sprintf("svc-%d", i+1)] {
			t.Errorf("item %d: held object reused", i+1)
		}
	}
}
