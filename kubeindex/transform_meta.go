package kubeindex

import (
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// metaStub gives the slim stored objects the metav1.Object method set that
// client-go's cache needs for keys (namespace/name) and resourceVersions;
// each stored type adds GetNamespace, GetName and GetResourceVersion itself.
// The stub is zero-sized: keeping a full ObjectMeta (~250 bytes plus labels
// and annotations) per object is exactly what the transforms exist to avoid.
// The remaining getters return zero values and the setters do nothing; the
// informer machinery never calls them on stored objects.
type metaStub struct{}

func (metaStub) SetNamespace(string)                           {}
func (metaStub) SetName(string)                                {}
func (metaStub) GetGenerateName() string                       { return "" }
func (metaStub) SetGenerateName(string)                        {}
func (metaStub) GetUID() types.UID                             { return "" }
func (metaStub) SetUID(types.UID)                              {}
func (metaStub) SetResourceVersion(string)                     {}
func (metaStub) GetGeneration() int64                          { return 0 }
func (metaStub) SetGeneration(int64)                           {}
func (metaStub) GetSelfLink() string                           { return "" }
func (metaStub) SetSelfLink(string)                            {}
func (metaStub) GetCreationTimestamp() metav1.Time             { return metav1.Time{} }
func (metaStub) SetCreationTimestamp(metav1.Time)              {}
func (metaStub) GetDeletionTimestamp() *metav1.Time            { return nil }
func (metaStub) SetDeletionTimestamp(*metav1.Time)             {}
func (metaStub) GetDeletionGracePeriodSeconds() *int64         { return nil }
func (metaStub) SetDeletionGracePeriodSeconds(*int64)          {}
func (metaStub) GetLabels() map[string]string                  { return nil }
func (metaStub) SetLabels(map[string]string)                   {}
func (metaStub) GetAnnotations() map[string]string             { return nil }
func (metaStub) SetAnnotations(map[string]string)              {}
func (metaStub) GetFinalizers() []string                       { return nil }
func (metaStub) SetFinalizers([]string)                        {}
func (metaStub) GetOwnerReferences() []metav1.OwnerReference   { return nil }
func (metaStub) SetOwnerReferences([]metav1.OwnerReference)    {}
func (metaStub) GetManagedFields() []metav1.ManagedFieldsEntry { return nil }
func (metaStub) SetManagedFields([]metav1.ManagedFieldsEntry)  {}

// GetObjectKind: stored objects carry no type; the informer never asks.
func (metaStub) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

var (
	_ metav1.Object = (*storedService)(nil)
	_ metav1.Object = (*storedSlice)(nil)
	_ metav1.Object = (*storedPod)(nil)
	_ metav1.Object = (*storedNamespace)(nil)
	// runtime.Object lets a list carry stored objects (see lister).
	_ runtime.Object = (*storedService)(nil)
	_ runtime.Object = (*storedSlice)(nil)
	_ runtime.Object = (*storedPod)(nil)
	_ runtime.Object = (*storedNamespace)(nil)
)

// DeepCopyObject returns the object itself: stored objects are never
// mutated once built, so sharing one is as good as a copy.
func (s *storedService) DeepCopyObject() runtime.Object   { return s }
func (s *storedSlice) DeepCopyObject() runtime.Object     { return s }
func (p *storedPod) DeepCopyObject() runtime.Object       { return p }
func (n *storedNamespace) DeepCopyObject() runtime.Object { return n }

func (s *storedService) GetNamespace() string       { return s.Namespace }
func (s *storedService) GetName() string            { return s.Name }
func (s *storedService) GetResourceVersion() string { return s.rv }

func (s *storedSlice) GetNamespace() string       { return s.namespace }
func (s *storedSlice) GetName() string            { return s.name }
func (s *storedSlice) GetResourceVersion() string { return s.rv }

// GetNamespace and GetName make the pod's cache key its name (see storedPod).
func (p *storedPod) GetNamespace() string       { return "" }
func (p *storedPod) GetName() string            { return p.key }
func (p *storedPod) GetResourceVersion() string { return p.rv }

func (n *storedNamespace) GetNamespace() string       { return "" }
func (n *storedNamespace) GetName() string            { return n.name }
func (n *storedNamespace) GetResourceVersion() string { return n.rv }

// maxInterned bounds the interner; when full it starts over, which only
// costs de-duplication of strings seen afterwards, never correctness.
const maxInterned = 1 << 14

// interner de-duplicates the few strings repeated across many objects
// (namespace names, port names and protocols). Transforms of different
// informers run concurrently, hence the mutex; it is never on the read path.
type interner struct {
	mu sync.Mutex
	m  map[string]string // guarded by mu
}

func (in *interner) get(s string) string {
	if s == "" {
		return ""
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if v, ok := in.m[s]; ok {
		return v
	}
	if in.m == nil || len(in.m) >= maxInterned {
		in.m = make(map[string]string)
	}
	in.m[s] = s
	return s
}

// packStrings replaces the strings behind ps with copies sharing one
// allocation. The strings a stored object keeps would otherwise stay where
// the decoder put them, one by one amid its garbage, and each would pin a
// mostly empty span once that garbage is collected; packed (and allocated
// per batch, see listBatch) they are one small object next to the others.
func packStrings(ps ...*string) {
	n := 0
	for _, p := range ps {
		n += len(*p)
	}
	if n == 0 {
		return
	}
	var b strings.Builder
	b.Grow(n)
	for _, p := range ps {
		b.WriteString(*p)
	}
	all := b.String()
	for _, p := range ps {
		l := len(*p)
		*p, all = all[:l], all[l:]
	}
}

// packLabels does what packStrings does for the labels of eps.
func packLabels(eps []Endpoint) {
	n := 0
	for i := range eps {
		n += len(eps[i].Label)
	}
	if n == 0 {
		return
	}
	var b strings.Builder
	b.Grow(n)
	for i := range eps {
		b.WriteString(eps[i].Label)
	}
	all := b.String()
	for i := range eps {
		l := len(eps[i].Label)
		eps[i].Label, all = all[:l], all[l:]
	}
}
