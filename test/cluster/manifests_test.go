package cluster

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestExtractConfigs(t *testing.T) {
	dir := t.TempDir()
	manifest := filepath.Join(dir, "m.yaml")
	const doc = `# comment-only document first
---
apiVersion: v1
kind: ConfigMap
metadata: {name: a, namespace: kube-system}
data:
  clusterdns.yaml: |
    listen: [":53"]
  notes.txt: not a config
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: a, namespace: kube-system}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: b, namespace: other}
data:
  one.yml: "cache: {size: 1}\n"
`
	if err := os.WriteFile(manifest, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	got, err := ExtractConfigs(out, manifest)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		filepath.Join(out, "kube-system_a_clusterdns.yaml"): "listen: [\":53\"]\n",
		filepath.Join(out, "other_b_one.yml"):               "cache: {size: 1}\n",
	}
	if len(got) != len(want) || !slices.IsSorted(got) {
		t.Fatalf("files %v, want the %d of %v, sorted", got, len(want), want)
	}
	for _, f := range got {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if w, ok := want[f]; !ok || string(b) != w {
			t.Errorf("%s = %q, want %q (expected: %v)", f, b, w, ok)
		}
	}

	if _, err := ExtractConfigs(out, manifest, manifest); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("same ConfigMap twice: err = %v, want an error naming the duplicate", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("kind: ConfigMap\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ExtractConfigs(out, bad); err == nil {
		t.Error("object without apiVersion and name: no error")
	}
}

// TestDeployConfigs extracts the configs the manifests ship and checks their
// shape against the server's top-level schema, until the server's own
// `clusterdns -check-config` is run on each of these files.
func TestDeployConfigs(t *testing.T) {
	files, err := DeployManifests()
	if err != nil {
		t.Fatal(err)
	}
	configs, err := ExtractConfigs(t.TempDir(), files...)
	if err != nil {
		t.Fatal(err)
	}
	top := []string{"listen", "limits", "lameduck", "log", "http", "cache", "forward", "kubernetes"}
	// ConfigMap -> whether it must have a cluster index.
	want := map[string]bool{"kube-system_clusterdns_clusterdns.yaml": true, "kube-system_clusterdns-nodelocal_clusterdns.yaml": false}
	if len(configs) != len(want) {
		t.Fatalf("configs %v, want %d", configs, len(want))
	}
	for _, f := range configs {
		index, ok := want[filepath.Base(f)]
		if !ok {
			t.Errorf("unexpected config %s", f)
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(b, &m); err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
			continue
		}
		for k := range m {
			if !slices.Contains(top, k) {
				t.Errorf("%s: unknown top-level key %q", filepath.Base(f), k)
			}
		}
		if _, ok := m["listen"]; !ok {
			t.Errorf("%s: no listen addresses", filepath.Base(f))
		}
		if _, has := m["kubernetes"]; has != index {
			t.Errorf("%s: kubernetes section present = %v, want %v", filepath.Base(f), has, index)
		}
	}
}
