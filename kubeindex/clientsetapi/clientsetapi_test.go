package clientsetapi

import (
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// TestListWatch lists and watches each resource kubeindex uses through a
// fake clientset, and refuses any other.
func TestListWatch(t *testing.T) {
	om := metav1.ObjectMeta{Namespace: "ns", Name: "x"}
	a := New(fake.NewClientset(&corev1.Service{ObjectMeta: om}, &discoveryv1.EndpointSlice{ObjectMeta: om},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns"}}, &corev1.Pod{ObjectMeta: om}))
	for _, res := range []string{"services", "endpointslices", "namespaces", "pods"} {
		list, err := a.List(t.Context(), res, "", metav1.ListOptions{})
		if err != nil {
			t.Fatalf("list %s: %v", res, err)
		}
		if n := meta.LenList(list); n != 1 {
			t.Errorf("list %s: %d items, want 1", res, n)
		}
		w, err := a.Watch(t.Context(), res, "", metav1.ListOptions{})
		if err != nil {
			t.Fatalf("watch %s: %v", res, err)
		}
		w.Stop()
	}
	if _, err := a.List(t.Context(), "secrets", "", metav1.ListOptions{}); !errors.Is(err, ErrUnknownResource) {
		t.Errorf("list secrets: err = %v, want ErrUnknownResource", err)
	}
	if _, err := a.Watch(t.Context(), "secrets", "", metav1.ListOptions{}); !errors.Is(err, ErrUnknownResource) {
		t.Errorf("watch secrets: err = %v, want ErrUnknownResource", err)
	}
	if !a.IsWatchListSemanticsUnSupported() {
		t.Error("a fake clientset's lack of streaming lists is not passed on")
	}
}
