package cluster

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// TestDeployManifestsDryRun sends every manifest of deploy/ and
// deploy/nodelocal/ to the real API server (server-side dry run, strict
// field validation): a typo, an unknown field or a value the API rejects
// fails here rather than in an operator's cluster.
func TestDeployManifestsDryRun(t *testing.T) {
	c := Start(t)
	files, err := DeployManifests()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(t.Context(), true, files...); err != nil {
		t.Fatalf("dry-run apply of deploy manifests:\n%v", err)
	}

	// The check itself must be able to fail: a misspelled field and an
	// invalid value are both rejected.
	for name, doc := range map[string]string{
		"unknown field": "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x, namespace: kube-system}\nautomountToken: false\n",
		"invalid value": "apiVersion: v1\nkind: Service\nmetadata: {name: x, namespace: kube-system}\nspec: {clusterIP: 10.96.0.400, ports: [{port: 53}]}\n",
	} {
		path := filepath.Join(t.TempDir(), "bad.yaml")
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := c.Apply(t.Context(), true, path); err == nil {
			t.Errorf("%s: dry-run apply accepted:\n%s", name, doc)
		}
	}
}

// TestDeployKustomizeDryRun checks that both kustomizations build and apply,
// when kubectl is installed (it is not required on a fresh machine).
func TestDeployKustomizeDryRun(t *testing.T) {
	c := Start(t)
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed: kustomizations not checked (the manifests are, by TestDeployManifestsDryRun)")
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"deploy", "deploy/nodelocal"} {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig", c.Kubeconfig,
			"apply", "--dry-run=server", "--validate=strict", "-k", filepath.Join(root, dir)).CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("kubectl apply --dry-run=server -k %s: %v\n%s", dir, err, out)
		}
	}
}

// TestDeployRBAC applies deploy/rbac.yaml for real and checks, through
// SubjectAccessReviews and a real token of the ServiceAccount, that clusterdns
// may list and watch exactly Services, Namespaces and EndpointSlices, and
// Pods only once deploy/rbac-pods.yaml is applied too.
func TestDeployRBAC(t *testing.T) {
	c := Start(t)
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(t.Context(), false, filepath.Join(root, "deploy", "rbac.yaml")); err != nil {
		t.Fatal(err)
	}
	const user = "system:serviceaccount:kube-system:clusterdns"
	type access struct{ group, resource, verb string }
	core := []access{
		{"", "services", "list"}, {"", "services", "watch"},
		{"", "namespaces", "list"}, {"", "namespaces", "watch"},
		{"discovery.k8s.io", "endpointslices", "list"}, {"discovery.k8s.io", "endpointslices", "watch"},
	}
	pods := []access{{"", "pods", "list"}, {"", "pods", "watch"}}
	never := []access{
		{"", "services", "get"}, {"", "services", "create"}, {"", "services", "update"}, {"", "services", "delete"},
		{"", "namespaces", "get"}, {"discovery.k8s.io", "endpointslices", "get"}, {"discovery.k8s.io", "endpointslices", "patch"},
		{"", "endpoints", "list"}, {"", "secrets", "list"}, {"", "configmaps", "list"}, {"", "nodes", "list"},
		{"", "pods", "get"},
	}
	// expect waits (bounded) for the authorizer's cache to reflect a change.
	expect := func(t *testing.T, list []access, allowed bool) {
		t.Helper()
		for _, a := range list {
			var got bool
			err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
				r, err := c.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
					Spec: authorizationv1.SubjectAccessReviewSpec{
						User:               user,
						Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"},
						ResourceAttributes: &authorizationv1.ResourceAttributes{Group: a.group, Resource: a.resource, Verb: a.verb},
					},
				}, metav1.CreateOptions{})
				if err != nil {
					return false, err
				}
				got = r.Status.Allowed
				return got == allowed, nil
			})
			if err != nil {
				t.Errorf("%s %s.%s: allowed=%v, want %v (%v)", a.verb, a.resource, a.group, got, allowed, err)
			}
		}
	}
	expect(t, core, true)
	expect(t, pods, false)
	expect(t, never, false)

	// A real token of the ServiceAccount lists cluster-wide and is refused pods.
	sa := kubernetes.NewForConfigOrDie(RESTConfig(t, c.ServiceAccountKubeconfig(t, "kube-system", "clusterdns")))
	if _, err := sa.CoreV1().Services("").List(t.Context(), metav1.ListOptions{}); err != nil {
		t.Errorf("serviceaccount lists services: %v", err)
	}
	if _, err := sa.DiscoveryV1().EndpointSlices("").List(t.Context(), metav1.ListOptions{}); err != nil {
		t.Errorf("serviceaccount lists endpointslices: %v", err)
	}
	if _, err := sa.CoreV1().Pods("").List(t.Context(), metav1.ListOptions{}); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Errorf("serviceaccount lists pods without rbac-pods.yaml: err = %v, want forbidden", err)
	}

	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		_ = c.Client.RbacV1().ClusterRoleBindings().Delete(ctx, "clusterdns-pods", metav1.DeleteOptions{})
		_ = c.Client.RbacV1().ClusterRoles().Delete(ctx, "clusterdns-pods", metav1.DeleteOptions{})
	})
	if err := c.Apply(t.Context(), false, filepath.Join(root, "deploy", "rbac-pods.yaml")); err != nil {
		t.Fatal(err)
	}
	expect(t, pods, true)
	expect(t, never, false)
}
