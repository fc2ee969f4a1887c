package kubeindex

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
)

const testKubeconfig = `apiVersion: v1
kind: Config
current-context: one
clusters:
- name: one
  cluster: {server: "https://127.0.0.1:6443"}
- name: two
  cluster: {server: "https://127.0.0.2:6443"}
contexts:
- name: one
  context: {cluster: one, user: u}
- name: two
  context: {cluster: two, user: u}
users:
- name: u
  user: {token: secret}
`

func TestRestConfig(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	path := filepath.Join(home, "kc")
	if err := os.WriteFile(path, []byte(testKubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Default()
	cfg.Kubeconfig, cfg.QPS, cfg.Burst = path, 7, 9
	rc, err := restConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Host != "https://127.0.0.1:6443" || rc.QPS != 7 || rc.Burst != 9 || rc.ContentType != runtime.ContentTypeProtobuf ||
		!strings.HasPrefix(rc.AcceptContentTypes, runtime.ContentTypeProtobuf) || !strings.HasPrefix(rc.UserAgent, "clusterdns/") {
		t.Errorf("rest config: host %s qps %v burst %d content %s accept %s agent %s",
			rc.Host, rc.QPS, rc.Burst, rc.ContentType, rc.AcceptContentTypes, rc.UserAgent)
	}

	cfg.Kubeconfig, cfg.Context = "~/kc", "two"
	if rc, err = restConfig(cfg); err != nil || rc.Host != "https://127.0.0.2:6443" {
		t.Errorf("~ path with context two: host %v, err %v", rc, err)
	}
	if c, err := NewClient(cfg); err != nil || c == nil {
		t.Errorf("NewClient = %v, %v", c, err)
	}

	for _, c := range []struct {
		name, kubeconfig, context, want string
	}{
		{"missing file", filepath.Join(home, "nope"), "", filepath.Join(home, "nope")},
		{"unknown context", path, "three", path},
		{"in-cluster outside a cluster", "", "", "in-cluster config"},
	} {
		cfg.Kubeconfig, cfg.Context = c.kubeconfig, c.context
		if _, err := NewClient(cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want it to name %q", c.name, err, c.want)
		}
	}
	cfg.Kubeconfig, cfg.Context = "", "two"
	if _, err := NewClient(cfg); !errors.Is(err, ErrContextWithoutKubeconfig) {
		t.Errorf("context without kubeconfig: %v", err)
	}
}

// TestRESTAPI checks the settings newRESTAPI refuses and the resources it
// serves; lists and watches over HTTP are list_test.go's.
func TestRESTAPI(t *testing.T) {
	if _, err := newRESTAPI(&rest.Config{Host: "https://127.0.0.1:6443", QPS: 5}); !errors.Is(err, ErrBadRateLimit) {
		t.Errorf("qps without burst: err = %v, want ErrBadRateLimit", err)
	}
	a, err := newRESTAPI(&rest.Config{Host: "https://127.0.0.1:6443", QPS: 5, Burst: 10})
	if err != nil {
		t.Fatal(err)
	}
	if a.core.APIVersion().String() != "v1" || a.disc.APIVersion().String() != "discovery.k8s.io/v1" {
		t.Errorf("group versions %s and %s", a.core.APIVersion(), a.disc.APIVersion())
	}
	if a.core.GetRateLimiter() == nil || a.core.GetRateLimiter() != a.disc.GetRateLimiter() {
		t.Error("the groups do not share one rate limiter")
	}
	if _, err := a.List(t.Context(), "secrets", "", metav1.ListOptions{}); !errors.Is(err, errUnknownResource) {
		t.Errorf("list secrets: err = %v, want errUnknownResource", err)
	}
	if _, err := a.Watch(t.Context(), "secrets", "", metav1.ListOptions{}); !errors.Is(err, errUnknownResource) {
		t.Errorf("watch secrets: err = %v, want errUnknownResource", err)
	}
}
