package cluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// cleanupTimeout bounds each deletion made in t.Cleanup, where the test's
// own context is already canceled.
const cleanupTimeout = 30 * time.Second

// Port is a Service or EndpointSlice port. Protocol "" means TCP.
type Port struct {
	Name     string
	Port     int32
	Protocol corev1.Protocol
}

func (p Port) protocol() corev1.Protocol {
	if p.Protocol == "" {
		return corev1.ProtocolTCP
	}
	return p.Protocol
}

// waitSystem waits until the API server's own bootstrap objects exist:
// kube-system (created by a controller shortly after /readyz) and the
// system priority classes manifests refer to.
func (c *Cluster) waitSystem(ctx context.Context) error {
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		if _, err := c.Client.CoreV1().Namespaces().Get(ctx, metav1.NamespaceSystem, metav1.GetOptions{}); err != nil {
			return false, nil
		}
		_, err := c.Client.SchedulingV1().PriorityClasses().Get(ctx, "system-cluster-critical", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("wait for kube-system and system priority classes: %w", err)
	}
	return nil
}

// NewNamespace creates a namespace named prefix-<random> and deletes it with
// everything in it when t ends. Names are unique, so parallel tests sharing
// the cluster never see each other's objects.
func (c *Cluster) NewNamespace(t testing.TB, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%08x", strings.ToLower(prefix), rand.Uint32())
	c.CreateNamespace(t, name)
	return name
}

// CreateNamespace creates namespace name and deletes it when t ends.
func (c *Cluster) CreateNamespace(t testing.TB, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := c.Client.CoreV1().Namespaces().Create(t.Context(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if err := c.DeleteNamespace(ctx, name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
}

// DeleteNamespace deletes a namespace the way a real cluster would end up:
// without a controller manager nobody empties a terminating namespace or
// removes its finalizer, so this deletes the Services, EndpointSlices and
// Pods in it, deletes it, and finalizes it. It returns once it is gone.
func (c *Cluster) DeleteNamespace(ctx context.Context, name string) error {
	all := metav1.ListOptions{}
	del := metav1.DeleteOptions{}
	if err := c.Client.DiscoveryV1().EndpointSlices(name).DeleteCollection(ctx, del, all); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete endpointslices in %s: %w", name, err)
	}
	// Services have no DeleteCollection: one at a time.
	svcs, err := c.Client.CoreV1().Services(name).List(ctx, all)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("list services in %s: %w", name, err)
	}
	if svcs != nil {
		for _, s := range svcs.Items {
			if err := c.Client.CoreV1().Services(name).Delete(ctx, s.Name, del); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("delete service %s/%s: %w", name, s.Name, err)
			}
		}
	}
	zero := int64(0) // no kubelet will confirm a graceful pod deletion
	if err := c.Client.CoreV1().Pods(name).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, all); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete pods in %s: %w", name, err)
	}
	if err := c.Client.CoreV1().Namespaces().Delete(ctx, name, del); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("delete namespace %s: %w", name, err)
	}
	ns, err := c.Client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get namespace %s: %w", name, err)
	}
	ns.Spec.Finalizers = nil
	if _, err := c.Client.CoreV1().Namespaces().Finalize(ctx, ns, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("finalize namespace %s: %w", name, err)
	}
	err = wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, err := c.Client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		return fmt.Errorf("wait for namespace %s to go: %w", name, err)
	}
	return nil
}

func servicePorts(ports []Port) []corev1.ServicePort {
	out := make([]corev1.ServicePort, 0, len(ports))
	for _, p := range ports {
		out = append(out, corev1.ServicePort{Name: p.Name, Port: p.Port, Protocol: p.protocol()})
	}
	return out
}

// ClusterIPService returns a single-stack (IPv4) ClusterIP Service without
// selector: its endpoints are EndpointSlices the test creates.
func ClusterIPService(ns, name string, ports ...Port) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Type:  corev1.ServiceTypeClusterIP,
			Ports: servicePorts(ports),
		},
	}
}

// DualStackService returns a ClusterIP Service with an IPv4 and an IPv6
// cluster IP (the test API server has a range of each family).
func DualStackService(ns, name string, ports ...Port) *corev1.Service {
	s := ClusterIPService(ns, name, ports...)
	policy := corev1.IPFamilyPolicyRequireDualStack
	s.Spec.IPFamilyPolicy = &policy
	s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	return s
}

// HeadlessService returns a Service with clusterIP None.
func HeadlessService(ns, name string, ports ...Port) *corev1.Service {
	s := ClusterIPService(ns, name, ports...)
	s.Spec.ClusterIP = corev1.ClusterIPNone
	return s
}

// ExternalNameService returns a Service that is a CNAME to target.
func ExternalNameService(ns, name, target string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Type:         corev1.ServiceTypeExternalName,
			ExternalName: target,
		},
	}
}

// CreateService creates svc and returns it as stored (cluster IPs assigned).
func (c *Cluster) CreateService(t testing.TB, svc *corev1.Service) *corev1.Service {
	t.Helper()
	got, err := c.Client.CoreV1().Services(svc.Namespace).Create(t.Context(), svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create service %s/%s: %v", svc.Namespace, svc.Name, err)
	}
	return got
}

// Endpoint is one endpoint of an EndpointSlice.
type Endpoint struct {
	// Addresses of one family, matching the slice's address type.
	Addresses []string
	// Hostname gives the endpoint a DNS name under a headless Service.
	Hostname string
	// NotReady marks the endpoint not ready (ready is the default).
	NotReady bool
	// Pod, when set, is the name of the Pod in the slice's namespace the
	// endpoint belongs to (targetRef).
	Pod string
}

// EndpointSlice returns a slice named name for Service service in ns, labelled
// kubernetes.io/service-name as the EndpointSlice controller does, so it is
// what DNS servers read for that Service.
func EndpointSlice(ns, service, name string, family discoveryv1.AddressType, ports []Port, eps ...Endpoint) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns,
			Name:      name,
			Labels: map[string]string{
				discoveryv1.LabelServiceName: service,
				discoveryv1.LabelManagedBy:   "clusterdns-test",
			},
		},
		AddressType: family,
	}
	for _, p := range ports {
		proto := p.protocol()
		es.Ports = append(es.Ports, discoveryv1.EndpointPort{Name: &p.Name, Port: &p.Port, Protocol: &proto})
	}
	for _, e := range eps {
		ready := !e.NotReady
		ep := discoveryv1.Endpoint{
			Addresses:  e.Addresses,
			Conditions: discoveryv1.EndpointConditions{Ready: &ready},
		}
		if e.Hostname != "" {
			ep.Hostname = &e.Hostname
		}
		if e.Pod != "" {
			ep.TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: e.Pod}
		}
		es.Endpoints = append(es.Endpoints, ep)
	}
	return es
}

// CreateEndpointSlice creates es and returns it as stored.
func (c *Cluster) CreateEndpointSlice(t testing.TB, es *discoveryv1.EndpointSlice) *discoveryv1.EndpointSlice {
	t.Helper()
	got, err := c.Client.DiscoveryV1().EndpointSlices(es.Namespace).Create(t.Context(), es, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create endpointslice %s/%s: %v", es.Namespace, es.Name, err)
	}
	return got
}

// CreatePod creates a Pod and, since no kubelet runs, sets its status to
// Running with the given IPs (at most one per family, primary first).
func (c *Cluster) CreatePod(t testing.TB, ns, name string, ips ...string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.PodSpec{
			// Never pulled: no node runs it.
			Containers: []corev1.Container{{Name: "main", Image: "registry.invalid/none:0"}},
		},
	}
	got, err := c.Client.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s/%s: %v", ns, name, err)
	}
	if len(ips) == 0 {
		return got
	}
	got.Status.Phase = corev1.PodRunning
	got.Status.PodIP = ips[0]
	for _, ip := range ips {
		got.Status.PodIPs = append(got.Status.PodIPs, corev1.PodIP{IP: ip})
	}
	got, err = c.Client.CoreV1().Pods(ns).UpdateStatus(t.Context(), got, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("set status of pod %s/%s: %v", ns, name, err)
	}
	return got
}
