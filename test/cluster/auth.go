package cluster

import (
	"os"
	"path/filepath"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ServiceAccountKubeconfig writes a kubeconfig that authenticates as
// ServiceAccount ns/name with a real token (TokenRequest API), so a process
// using it has exactly the RBAC bound to that account, e.g. by
// deploy/rbac.yaml applied with Apply. It creates the ServiceAccount when
// missing. The file lives in t's temporary directory.
func (c *Cluster) ServiceAccountKubeconfig(t testing.TB, ns, name string) string {
	t.Helper()
	ctx := t.Context()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if _, err := c.Client.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create serviceaccount %s/%s: %v", ns, name, err)
	}
	expiry := int64(3600)
	tr, err := c.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for serviceaccount %s/%s: %v", ns, name, err)
	}
	return c.writeKubeconfig(t, "sa-"+ns+"-"+name, &clientcmdapi.AuthInfo{Token: tr.Status.Token})
}

// writeKubeconfig writes a kubeconfig for this cluster with the given
// credentials to t's temporary directory and returns its path.
func (c *Cluster) writeKubeconfig(t testing.TB, user string, auth *clientcmdapi.AuthInfo) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["clusterdns-test"] = &clientcmdapi.Cluster{
		Server:               c.Config.Host,
		CertificateAuthority: c.Config.CAFile,
	}
	cfg.AuthInfos[user] = auth
	cfg.Contexts["clusterdns-test"] = &clientcmdapi.Context{Cluster: "clusterdns-test", AuthInfo: user}
	cfg.CurrentContext = "clusterdns-test"
	path := filepath.Join(t.TempDir(), user+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatalf("write kubeconfig: %v", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatalf("chmod kubeconfig: %v", err)
	}
	return path
}

// RESTConfig loads a kubeconfig written by ServiceAccountKubeconfig (or any
// other) with the same raised rate limits as the admin client.
func RESTConfig(t testing.TB, kubeconfig string) *rest.Config {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatalf("load kubeconfig %s: %v", kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = clientQPS, clientBurst
	return cfg
}
