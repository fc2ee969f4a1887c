package kubeindex

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"
)

// Informers: plain shared informers with resync 0 (a resync would only
// replay the cache to us), no extra indexers, and a transform so the cache
// holds stored* objects only. Their ListerWatcher is a lister: lists stream
// and transform one object at a time (list.go). Streaming lists
// (WatchListClient) are on by default in client-go >= 1.35: the reflector
// first opens a watch with sendInitialEvents, whose events are transformed
// one by one too; Kubernetes 1.33 refuses it unless kube-apiserver runs with
// --feature-gates=WatchList=true (beta; on by default in 1.32, off in 1.33),
// and the reflector then lists (TestWatchListFallback covers that path).
// With a namespace filter, services, slices and pods are watched per
// namespace, so other namespaces are never even sent to us and RBAC may be
// namespaced; namespaces themselves are always watched cluster-wide.

// watched is one running informer and what readiness needs to know of it.
type watched struct {
	resource string // metric label: services, endpointslices, namespaces, pods
	desc     string // for reasons and logs: resource, plus " in <ns>" if scoped
	inf      cache.SharedIndexInformer
	reg      cache.ResourceEventHandlerRegistration
	lastErr  atomic.Pointer[string] // last list/watch failure, for Ready
}

func (w *watched) synced() bool { return w.reg != nil && w.reg.HasSynced() }

// buildInformers creates every informer of the store; nothing runs yet.
func (s *Store) buildInformers() {
	scopes := []string{metav1.NamespaceAll}
	if s.idx.allowed != nil {
		scopes = scopes[:0]
		for ns := range s.idx.allowed {
			scopes = append(scopes, ns)
		}
		slices.Sort(scopes) // stable order of readiness reasons
	}
	s.add(resNamespaces, "", s.newLister(resNamespaces, "NamespaceList", "", decodeAs[corev1.Namespace]()),
		&corev1.Namespace{}, s.tr.namespace, s.namespaceHandler())
	for _, ns := range scopes {
		s.add(resServices, ns, s.newLister(resServices, "ServiceList", ns, decodeAs[corev1.Service]()),
			&corev1.Service{}, s.tr.service, s.serviceHandler())
		s.add(resEndpointSlices, ns, s.newLister(resEndpointSlices, "EndpointSliceList", ns, decodeAs[discoveryv1.EndpointSlice]()),
			&discoveryv1.EndpointSlice{}, s.tr.slice, s.sliceHandler())
		if s.cfg.Pods == PodsVerified {
			l := s.newLister(resPods, "PodList", ns, decodePod)
			// Finished pods hold no IP any more (the transform checks too:
			// not every server, nor the fake clientset, honours this).
			l.tweak = func(o *metav1.ListOptions) {
				o.FieldSelector = "status.phase!=" + string(corev1.PodSucceeded) + ",status.phase!=" + string(corev1.PodFailed)
			}
			s.add(resPods, ns, l, &corev1.Pod{}, s.tr.pod, s.podHandler())
		}
	}
}

// newLister returns the lister of resource in ns over the store's API; it
// streams lists when the API can (NewClient's).
func (s *Store) newLister(resource, listKind, ns string, decode func([]byte) (runtime.Object, error)) *lister {
	str, _ := s.client.(streamer)
	return &lister{resource: resource, listKind: listKind, ns: ns, api: s.client, str: str, decode: decode}
}

func (s *Store) add(resource, ns string, l *lister, example runtime.Object, tf cache.TransformFunc, h cache.ResourceEventHandler) {
	w := &watched{resource: resource, desc: resource}
	if ns != "" {
		w.desc = resource + " in " + ns
	}
	inf := cache.NewSharedIndexInformerWithOptions(l.listerWatcher(s.client), example, cache.SharedIndexInformerOptions{})
	w.inf = inf
	tf = reuseUnchanged(inf.GetStore(), tf)
	l.tf, l.log, l.listed, l.known = tf, s.log, s.rel.listed, inf.GetStore()
	// These only fail on an informer that already runs; ours are new.
	reg, err := inf.AddEventHandler(h)
	w.reg = reg
	if err = errors.Join(err,
		inf.SetTransform(tf),
		inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) { s.watchError(w, err) }),
	); err != nil {
		s.log.Error("kubeindex: informer setup", "resource", w.desc, "err", err)
	}
	s.watched = append(s.watched, w)
}

// reuseUnchanged wraps tf so that an object whose resourceVersion is the
// one already stored (a relist, a WatchList stream after a reconnect) comes
// out as the stored object itself: a resourceVersion changes with every
// write, so the content is the same. A relist of an unchanged cluster then
// allocates no new stored objects, the handlers see old == new and skip,
// and the index never ends up holding an old copy (a view sharing the old
// object's endpoints) beside the informer's new one.
func reuseUnchanged(store cache.Store, tf cache.TransformFunc) cache.TransformFunc {
	return func(obj any) (any, error) {
		if m, ok := obj.(metav1.Object); ok && m.GetResourceVersion() != "" {
			key := m.GetName()
			if ns := m.GetNamespace(); ns != "" {
				key = ns + "/" + key
			}
			if old, ok, _ := store.GetByKey(key); ok {
				if om, ok := old.(metav1.Object); ok && om.GetResourceVersion() == m.GetResourceVersion() {
					return old, nil
				}
			}
		}
		return tf(obj)
	}
}

// watchError is every informer's watch error handler: it counts the failure
// and keeps it for Ready. The reflector itself retries with backoff.
func (s *Store) watchError(w *watched, err error) {
	reason := watchErrorReason(err)
	s.metrics.watchErrors.WithLabelValues(w.resource, reason).Inc()
	switch reason {
	case "expired", "closed": // routine: the reflector relists or rewatches
		s.log.Debug("kubeindex: watch ended", "resource", w.desc, "reason", reason, "err", err)
		return
	}
	msg := fmt.Sprintf("%s: %s: %v", w.desc, reasonText(reason), err)
	w.lastErr.Store(&msg)
	if w.synced() {
		s.log.Warn("kubeindex: watch failed, serving last known state", "resource", w.desc, "reason", reason, "err", err)
	} else {
		s.log.Warn("kubeindex: initial list/watch failed", "resource", w.desc, "reason", reason, "err", err)
	}
}

// watchErrorReason classifies a list/watch error into a metric label.
func watchErrorReason(err error) string {
	var ne net.Error
	switch {
	case apierrors.IsForbidden(err):
		return "forbidden"
	case apierrors.IsUnauthorized(err):
		return "unauthorized"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_refused"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		apierrors.IsTimeout(err), apierrors.IsServerTimeout(err), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case apierrors.IsResourceExpired(err), apierrors.IsGone(err):
		return "expired"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "closed"
	case apierrors.IsNotFound(err):
		return "not_found"
	}
	return "other"
}

func reasonText(reason string) string {
	switch reason {
	case "connection_refused":
		return "connection refused"
	case "not_found":
		return "not found"
	case "other":
		return "error"
	}
	return reason
}

// unwrapTombstone returns the last known object of a delete whose event was
// missed (cache.DeletedFinalStateUnknown, from a relist after a gap).
func unwrapTombstone(obj any) any {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return t.Obj
	}
	return obj
}

func (s *Store) serviceHandler() cache.ResourceEventHandler {
	get := func(obj any) *storedService {
		st, _ := s.stored(obj, s.tr.service).(*storedService)
		return st
	}
	return cache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj any, initial bool) {
			if st := get(obj); st != nil {
				s.idx.setService(svcKey{st.Namespace, st.Name}, st)
				now := s.eventDone(resServices)
				if !initial {
					s.metrics.observeLatency(resServices, st.created, now)
				}
			}
		},
		UpdateFunc: func(oldObj, obj any) {
			if st := get(obj); st != nil {
				if oldObj != obj { // the same object: a relist of an unchanged service
					s.idx.setService(svcKey{st.Namespace, st.Name}, st)
				}
				s.eventDone(resServices)
			}
		},
		DeleteFunc: func(obj any) {
			if st := get(obj); st != nil {
				s.idx.setService(svcKey{st.Namespace, st.Name}, nil)
				s.eventDone(resServices)
			}
		},
	}
}

func (s *Store) sliceHandler() cache.ResourceEventHandler {
	get := func(obj any) *storedSlice {
		st, _ := s.stored(obj, s.tr.slice).(*storedSlice)
		return st
	}
	return cache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj any, initial bool) {
			if st := get(obj); st != nil {
				s.idx.setSlice(nil, st)
				now := s.eventDone(resEndpointSlices)
				if !initial {
					s.metrics.observeLatency(resEndpointSlices, st.trigger, now)
				}
			}
		},
		UpdateFunc: func(oldObj, obj any) {
			old, st := get(oldObj), get(obj)
			if st == nil {
				return
			}
			s.idx.setSlice(old, st)
			now := s.eventDone(resEndpointSlices)
			if old == nil || st.trigger != old.trigger {
				s.metrics.observeLatency(resEndpointSlices, st.trigger, now)
			}
		},
		DeleteFunc: func(obj any) {
			if st := get(obj); st != nil {
				s.idx.setSlice(st, nil)
				s.eventDone(resEndpointSlices)
			}
		},
	}
}

func (s *Store) namespaceHandler() cache.ResourceEventHandler {
	set := func(obj any, present bool) {
		if st, _ := s.stored(obj, s.tr.namespace).(*storedNamespace); st != nil {
			s.idx.setNamespace(st.name, present)
			s.eventDone(resNamespaces)
		}
	}
	return cache.ResourceEventHandlerDetailedFuncs{
		AddFunc:    func(obj any, _ bool) { set(obj, true) },
		UpdateFunc: func(_, obj any) { set(obj, true) },
		DeleteFunc: func(obj any) { set(obj, false) },
	}
}

func (s *Store) podHandler() cache.ResourceEventHandler {
	get := func(obj any) *storedPod {
		st, _ := s.stored(obj, s.tr.pod).(*storedPod)
		return st
	}
	return cache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj any, _ bool) {
			if st := get(obj); st != nil {
				s.idx.setPod(nil, st)
				s.eventDone(resPods)
			}
		},
		UpdateFunc: func(oldObj, obj any) {
			if st := get(obj); st != nil {
				s.idx.setPod(get(oldObj), st)
				s.eventDone(resPods)
			}
		},
		DeleteFunc: func(obj any) {
			if st := get(obj); st != nil {
				s.idx.setPod(st, nil)
				s.eventDone(resPods)
			}
		},
	}
}

// stored returns obj (or a tombstone's object) as a stored object. The
// informers only ever hand us transformed objects; the transform call is a
// no-op for those and keeps a foreign path (a raw object) from being lost.
func (s *Store) stored(obj any, tf cache.TransformFunc) any {
	obj = unwrapTombstone(obj)
	if obj == nil {
		s.log.Warn("kubeindex: delete without object ignored")
		return nil
	}
	out, _ := tf(obj) // never fails
	return out
}

func (s *Store) eventDone(resource string) time.Time {
	s.events.Add(1)
	now := time.Now()
	s.metrics.event(resource, now)
	return now
}
