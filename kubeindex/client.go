package kubeindex

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// ErrContextWithoutKubeconfig is returned when a kubeconfig context is
// named for the in-cluster configuration, which has none.
var ErrContextWithoutKubeconfig = errors.New("kubeindex: context set without kubeconfig")

// NewClient returns an API client for cfg: the in-cluster configuration by
// default, else cfg.Kubeconfig (and cfg.Context). It does not contact the
// API server.
func NewClient(cfg Config) (kubernetes.Interface, error) {
	rc, err := restConfig(cfg)
	if err != nil {
		return nil, err
	}
	c, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubeindex: client for %s: %w", rc.Host, err)
	}
	return c, nil
}

// restConfig loads the connection settings and tunes them: rate limits from
// cfg, protobuf for the core and discovery types (about half the CPU and
// transient memory of JSON on a large list) and our user agent.
func restConfig(cfg Config) (*rest.Config, error) {
	var rc *rest.Config
	if cfg.Kubeconfig == "" {
		if cfg.Context != "" {
			return nil, fmt.Errorf("%w: %q", ErrContextWithoutKubeconfig, cfg.Context)
		}
		var err error
		if rc, err = rest.InClusterConfig(); err != nil {
			return nil, fmt.Errorf("kubeindex: in-cluster config: %w", err)
		}
	} else {
		path, err := expandHome(cfg.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubeindex: kubeconfig %s: %w", cfg.Kubeconfig, err)
		}
		loader := &clientcmd.ClientConfigLoadingRules{ExplicitPath: path}
		overrides := &clientcmd.ConfigOverrides{CurrentContext: cfg.Context}
		if rc, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(loader, overrides).ClientConfig(); err != nil {
			return nil, fmt.Errorf("kubeindex: kubeconfig %s: %w", path, err)
		}
	}
	rc.QPS = cfg.QPS
	rc.Burst = cfg.Burst
	rc.ContentType = runtime.ContentTypeProtobuf
	rc.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	rc.UserAgent = "clusterdns/" + version()
	return rc, nil
}

// expandHome expands a leading "~" (alone or followed by a separator).
func expandHome(p string) (string, error) {
	if p != "~" && !strings.HasPrefix(p, "~/") && !strings.HasPrefix(p, "~"+string(filepath.Separator)) {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("expand ~: %w", err)
	}
	return filepath.Join(home, p[1:]), nil
}

// version is the main module's version from the build info, with the VCS
// revision when the build has no release version.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return "dev-" + s.Value[:12]
		}
	}
	return "dev"
}
