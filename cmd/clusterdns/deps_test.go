package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoFullClientset keeps the binary free of client-go's full clientset:
// its scheme registers every API group there is, 6 MB of binary and about
// 4 MiB of resident memory for types a DNS server never reads. kubeindex
// talks to the API server through its own core/v1 and discovery/v1 client.
func TestNoFullClientset(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == "k8s.io/client-go/kubernetes" || strings.HasPrefix(pkg, "k8s.io/client-go/kubernetes/") {
			t.Errorf("clusterdns links %s", pkg)
		}
	}
}
