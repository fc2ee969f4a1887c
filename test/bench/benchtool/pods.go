package main

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// Pods the loader creates when asked (-pods), for servers watching pods in
// verified mode. No kubelet runs, so each Pod is created and then given a
// Running status with its IP through the status subresource, as a kubelet
// would. Pod j belongs to Service j mod services (its namespace, its app
// label) and carries what a Deployment's running pod carries (owner
// reference, node, one container with ports and resources, conditions,
// container status), so the bytes each server decodes at list time are
// realistic.
const (
	maxPods     = 1 << 19 // podBase's /13: below the sentinels at 10.127.255.x
	podTemplate = "7d9c5b8f4"
)

var (
	// podBase is the first pod address: 10.112.0.0/13 collides with none of
	// the Service range (10.96.0.0/12 in test/cluster), the endpoints
	// (10.128.0.0/9), proglat's (10.64.0.0/15) or the sentinels.
	podBase = netip.MustParseAddr("10.112.0.0")
	// sentinelPodIP is the Pod created after every other; a server that
	// answers its pod name has listed every Pod before it.
	sentinelPodIP = netip.MustParseAddr("10.127.255.250")
)

// podJob is Pod j of Service svc.
type podJob struct {
	ns, name, service string
	ip                netip.Addr
	node              int
}

// podFor returns the job of pod j out of nsvc Services.
func podFor(j, nsvc int) podJob {
	svc := j % nsvc
	return podJob{
		ns:      benchNamespace(svc / servicesPerNS),
		name:    fmt.Sprintf("s%d-%s-%d", svc, podTemplate, j/nsvc),
		service: fmt.Sprintf("s%d", svc),
		ip:      addIP(podBase, j),
		node:    j % 100,
	}
}

// podName is the verified pod record of ip in ns: 10-112-0-1.ns.pod.zone.
func podName(ip netip.Addr, ns, zone string) string {
	b := ip.As4()
	return fmt.Sprintf("%d-%d-%d-%d.%s.pod.%s.", b[0], b[1], b[2], b[3], ns, zone)
}

func newPod(j podJob) *corev1.Pod {
	controller := true
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: j.ns,
			Name:      j.name,
			Labels:    map[string]string{"app": j.service, "pod-template-hash": podTemplate, benchLabel: "true"},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: j.service + "-" + podTemplate,
				// No garbage collector runs: the owner need not exist.
				UID:        types.UID(fmt.Sprintf("00000000-0000-4000-8000-%012d", j.node)),
				Controller: &controller, BlockOwnerDeletion: &controller,
			}},
		},
		Spec: corev1.PodSpec{
			NodeName: fmt.Sprintf("node-%03d", j.node),
			Containers: []corev1.Container{{
				Name:  "app",
				Image: "registry.invalid/bench/app:1.0", // never pulled: no node runs it
				Ports: []corev1.ContainerPort{
					{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
					{Name: "dns", ContainerPort: 8053, Protocol: corev1.ProtocolUDP},
				},
				Env: []corev1.EnvVar{{Name: "SERVICE", Value: j.service}, {Name: "LOG_LEVEL", Value: "info"}},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
				},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
					HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromString("http")},
				}},
			}},
		},
	}
}

// runningStatus is what a kubelet reports for a started pod.
func runningStatus(j podJob) corev1.PodStatus {
	started := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	cond := func(t corev1.PodConditionType) corev1.PodCondition {
		return corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: started}
	}
	ready := true
	return corev1.PodStatus{
		Phase: corev1.PodRunning,
		Conditions: []corev1.PodCondition{
			cond(corev1.PodInitialized), cond(corev1.PodReady), cond(corev1.ContainersReady), cond(corev1.PodScheduled),
		},
		HostIP:    fmt.Sprintf("192.168.0.%d", j.node+1),
		HostIPs:   []corev1.HostIP{{IP: fmt.Sprintf("192.168.0.%d", j.node+1)}},
		PodIP:     j.ip.String(),
		PodIPs:    []corev1.PodIP{{IP: j.ip.String()}},
		StartTime: &started,
		QOSClass:  corev1.PodQOSBurstable,
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: "app", Ready: true, Started: &ready,
			Image:       "registry.invalid/bench/app:1.0",
			ImageID:     "registry.invalid/bench/app@sha256:" + fmt.Sprintf("%064d", 1),
			ContainerID: fmt.Sprintf("containerd://%064x", j.ip.As4()),
			State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}},
		}},
	}
}

// loadPod creates the Pod and sets its status. Rerun against the same
// control plane, it completes a Pod created earlier without a status.
func loadPod(ctx context.Context, cs kubernetes.Interface, j podJob) error {
	pods := cs.CoreV1().Pods(j.ns)
	var got *corev1.Pod
	err := withTimeout(ctx, func(ctx context.Context) error {
		var err error
		got, err = pods.Create(ctx, newPod(j), metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			got, err = pods.Get(ctx, j.name, metav1.GetOptions{})
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create pod %s/%s: %w", j.ns, j.name, err)
	}
	if got.Status.PodIP == j.ip.String() {
		return nil
	}
	got.Status = runningStatus(j)
	if err := withTimeout(ctx, func(ctx context.Context) error {
		_, err := pods.UpdateStatus(ctx, got, metav1.UpdateOptions{})
		return err
	}); err != nil {
		return fmt.Errorf("set status of pod %s/%s: %w", j.ns, j.name, err)
	}
	return nil
}

// sentinelPod is the pod job of a sentinel Pod named name in the first
// namespace.
func sentinelPod(name string, ip netip.Addr) podJob {
	return podJob{ns: benchNamespace(0), name: name, service: name, ip: ip}
}
