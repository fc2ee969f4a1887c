package integration

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/clusterdns/clusterdns/resolver/resolvertest"
	"github.com/clusterdns/clusterdns/test/cluster"
)

// TestRBAC runs clusterdns with exactly the permissions of deploy/rbac.yaml
// (a real token of its ServiceAccount): it syncs and answers. With the same
// objects minus the EndpointSlice rule, /ready names what is forbidden.
func TestRBAC(t *testing.T) {
	t.Parallel()
	c := cluster.Start(t)
	rbac := filepath.Join(repoRoot(t), "deploy", "rbac.yaml")
	up := startStub(t, "outside.example.org. 300 IN A 192.0.2.20")
	ns := c.NewNamespace(t, "rbac")
	http := cluster.Port{Name: "http", Port: 80}
	web := c.CreateService(t, cluster.ClusterIPService(ns, "web", http))
	c.CreateService(t, cluster.HeadlessService(ns, "head", http))
	c.CreateEndpointSlice(t, cluster.EndpointSlice(ns, "head", "head-1", discoveryv1.AddressTypeIPv4, []cluster.Port{http},
		cluster.Endpoint{Addresses: []string{"10.248.0.1"}}))
	webN, headN := svcName("web", ns), svcName("head", ns)
	outside := resolvertest.Case{Qname: "outside.example.org.", Qtype: dns.TypeA, Answer: []string{"outside.example.org. * IN A 192.0.2.20"}}

	t.Run("deploy/rbac.yaml", func(t *testing.T) {
		applyRBAC(t, c, rbac, "clusterdns", nil)
		srv := startServer(t, configYAML(up.Addr, c.ServiceAccountKubeconfig(t, "kube-system", "clusterdns")))
		code, body := waitHTTP(t, srv.ready, 15*time.Second, func(code int, _ string) bool { return code == 200 })
		if code != 200 {
			t.Fatalf("/ready with the deploy/ permissions: %d %q, want 200", code, body)
		}
		t.Logf("FIGURE synced as system:serviceaccount:kube-system:clusterdns; startup %v", srv.startup.Round(time.Millisecond))
		check(t, srv.addr, []resolvertest.Case{
			answerCase(webN, dns.TypeA, webN+" 5 IN A "+web.Spec.ClusterIP),
			answerCase(headN, dns.TypeA, headN+" 5 IN A 10.248.0.1"),
			outside,
		})
	})

	t.Run("without endpointslices", func(t *testing.T) {
		const name = "clusterdns-noeps"
		applyRBAC(t, c, rbac, name, func(rules []any) []any {
			return slices.DeleteFunc(rules, func(r any) bool {
				groups, _, _ := unstructured.NestedStringSlice(r.(map[string]any), "apiGroups")
				return slices.Contains(groups, "discovery.k8s.io")
			})
		})
		srv := startServer(t, configYAML(up.Addr, c.ServiceAccountKubeconfig(t, "kube-system", name), "startupTimeout: 500ms"))
		code, body := waitHTTP(t, srv.ready, 15*time.Second, func(code int, body string) bool {
			return code == 503 && strings.Contains(body, "endpointslices") && strings.Contains(body, "forbidden")
		})
		t.Logf("/ready: %d %q", code, body)
		if code != 503 || !strings.Contains(body, "endpointslices") || !strings.Contains(body, "forbidden") {
			t.Errorf("/ready without the endpointslices permission: %d %q, want 503 naming endpointslices and forbidden", code, body)
		}
		for _, other := range []string{"services", "namespaces"} {
			if strings.Contains(body, other) {
				t.Errorf("/ready blames %s, which the role allows: %q", other, body)
			}
		}
		// Unsynced: what the synced Services know is answered, but nothing
		// is denied (SERVFAIL instead of NXDOMAIN): not an unknown name, nor
		// a headless service whose endpoints cannot be read. The rest of the
		// world is served.
		check(t, srv.addr, []resolvertest.Case{
			answerCase(webN, dns.TypeA, webN+" 5 IN A "+web.Spec.ClusterIP),
			{Qname: headN, Qtype: dns.TypeA, Rcode: dns.RcodeServerFailure},
			{Qname: "nosuch." + ns + ".svc.cluster.local.", Qtype: dns.TypeA, Rcode: dns.RcodeServerFailure},
			outside,
		})
	})
}

// applyRBAC applies the objects of deploy/rbac.yaml renamed to name (the
// ServiceAccount, ClusterRole and ClusterRoleBinding, and the binding's
// references), with editRules applied to the role's rules when not nil, and
// deletes them when t ends.
func applyRBAC(t *testing.T, c *cluster.Cluster, path, name string, editRules func([]any) []any) {
	t.Helper()
	objs, err := cluster.ReadObjects(path)
	if err != nil {
		t.Fatal(err)
	}
	var docs []string
	kinds := map[string]bool{}
	for _, u := range objs {
		u.SetName(name)
		kinds[u.GetKind()] = true
		switch u.GetKind() {
		case "ClusterRole":
			if editRules != nil {
				rules, _, _ := unstructured.NestedSlice(u.Object, "rules")
				edited := editRules(slices.Clone(rules))
				if len(edited) == len(rules) {
					t.Fatalf("%s: the rule edit changed nothing", path)
				}
				if err := unstructured.SetNestedSlice(u.Object, edited, "rules"); err != nil {
					t.Fatal(err)
				}
			}
		case "ClusterRoleBinding":
			if err := unstructured.SetNestedField(u.Object, name, "roleRef", "name"); err != nil {
				t.Fatal(err)
			}
			subjects, _, _ := unstructured.NestedSlice(u.Object, "subjects")
			if len(subjects) != 1 {
				t.Fatalf("%s: binding has %d subjects, want the one ServiceAccount", path, len(subjects))
			}
			subjects[0].(map[string]any)["name"] = name
			if err := unstructured.SetNestedSlice(u.Object, subjects, "subjects"); err != nil {
				t.Fatal(err)
			}
		}
		b, err := u.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(b))
	}
	if !kinds["ServiceAccount"] || !kinds["ClusterRole"] || !kinds["ClusterRoleBinding"] {
		t.Fatalf("%s: kinds %v, want a ServiceAccount, a ClusterRole and a ClusterRoleBinding", path, kinds)
	}
	file := filepath.Join(t.TempDir(), name+".yaml")
	if err := os.WriteFile(file, []byte(strings.Join(docs, "\n---\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		del := metav1.DeleteOptions{}
		_ = c.Client.RbacV1().ClusterRoleBindings().Delete(ctx, name, del)
		_ = c.Client.RbacV1().ClusterRoles().Delete(ctx, name, del)
		_ = c.Client.CoreV1().ServiceAccounts("kube-system").Delete(ctx, name, del)
	})
	if err := c.Apply(t.Context(), false, file); err != nil {
		t.Fatalf("apply %s as %s: %v", path, name, err)
	}
}
