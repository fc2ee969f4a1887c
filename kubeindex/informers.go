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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	discoveryinformers "k8s.io/client-go/informers/discovery/v1"
	"k8s.io/client-go/tools/cache"
)

// Informers: plain shared informers with resync 0 (a resync would only
// replay the cache to us), no extra indexers, and SetTransform so the cache
// holds stored* objects only. Streaming lists (WatchListClient) are on by
// default in client-go >= 1.35: the reflector opens a watch with
// sendInitialEvents and, when the server refuses it, falls back to a plain
// paginated list by itself (TestWatchListFallback covers that path).
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
	s.add(resNamespaces, "", coreinformers.NewFilteredNamespaceInformer(s.client, 0, nil, nil),
		s.tr.namespace, s.namespaceHandler())
	for _, ns := range scopes {
		s.add(resServices, ns, coreinformers.NewFilteredServiceInformer(s.client, ns, 0, nil, nil),
			s.tr.service, s.serviceHandler())
		s.add(resEndpointSlices, ns, discoveryinformers.NewFilteredEndpointSliceInformer(s.client, ns, 0, nil, nil),
			s.tr.slice, s.sliceHandler())
		if s.cfg.Pods == PodsVerified {
			// Finished pods hold no IP any more (the transform checks too:
			// not every server, nor the fake clientset, honours this).
			tweak := func(o *metav1.ListOptions) {
				o.FieldSelector = "status.phase!=" + string(corev1.PodSucceeded) + ",status.phase!=" + string(corev1.PodFailed)
			}
			s.add(resPods, ns, coreinformers.NewFilteredPodInformer(s.client, ns, 0, nil, tweak),
				s.tr.pod, s.podHandler())
		}
	}
}

func (s *Store) add(resource, ns string, inf cache.SharedIndexInformer, tf cache.TransformFunc, h cache.ResourceEventHandler) {
	w := &watched{resource: resource, desc: resource, inf: inf}
	if ns != "" {
		w.desc = resource + " in " + ns
	}
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
		UpdateFunc: func(_, obj any) {
			if st := get(obj); st != nil {
				s.idx.setService(svcKey{st.Namespace, st.Name}, st)
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
	now := time.Now()
	s.metrics.event(resource, now)
	return now
}
