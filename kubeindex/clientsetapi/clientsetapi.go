// Package clientsetapi adapts a client-go clientset to kubeindex.API, for
// tests (fake clientsets) and programs that hold a clientset already.
//
// Design constraint: it is a package of its own so that the server binary,
// which talks to the API server through kubeindex.NewClient, never links
// the full clientset and its scheme of every API group. It does not import
// kubeindex (whose own tests use it); the method set is what fits.
package clientsetapi

import (
	"context"
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/watchlist"
)

// ErrUnknownResource: a resource kubeindex does not watch.
var ErrUnknownResource = errors.New("clientsetapi: unknown resource")

// API lists and watches through a clientset's typed clients.
type API struct {
	cs kubernetes.Interface
}

// New returns the API of cs.
func New(cs kubernetes.Interface) *API { return &API{cs: cs} }

// List lists resource ("services", "endpointslices", "namespaces", "pods")
// in ns ("" for all).
func (a *API) List(ctx context.Context, resource, ns string, opts metav1.ListOptions) (runtime.Object, error) {
	switch resource {
	case "services":
		return a.cs.CoreV1().Services(ns).List(ctx, opts)
	case "endpointslices":
		return a.cs.DiscoveryV1().EndpointSlices(ns).List(ctx, opts)
	case "namespaces":
		return a.cs.CoreV1().Namespaces().List(ctx, opts)
	case "pods":
		return a.cs.CoreV1().Pods(ns).List(ctx, opts)
	}
	return nil, fmt.Errorf("%w: %s", ErrUnknownResource, resource)
}

// Watch watches resource in ns.
func (a *API) Watch(ctx context.Context, resource, ns string, opts metav1.ListOptions) (watch.Interface, error) {
	switch resource {
	case "services":
		return a.cs.CoreV1().Services(ns).Watch(ctx, opts)
	case "endpointslices":
		return a.cs.DiscoveryV1().EndpointSlices(ns).Watch(ctx, opts)
	case "namespaces":
		return a.cs.CoreV1().Namespaces().Watch(ctx, opts)
	case "pods":
		return a.cs.CoreV1().Pods(ns).Watch(ctx, opts)
	}
	return nil, fmt.Errorf("%w: %s", ErrUnknownResource, resource)
}

// IsWatchListSemanticsUnSupported passes on the clientset's answer (fake
// clientsets do not stream lists), which client-go's informers ask for.
func (a *API) IsWatchListSemanticsUnSupported() bool {
	return watchlist.DoesClientNotSupportWatchListSemantics(a.cs)
}
