package kubeindex

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/flowcontrol"
)

// ErrContextWithoutKubeconfig is returned when a kubeconfig context is
// named for the in-cluster configuration, which has none.
var ErrContextWithoutKubeconfig = errors.New("kubeindex: context set without kubeconfig")

// API is the part of the Kubernetes API the store uses: lists and watches
// of one resource (resServices, resEndpointSlices, resNamespaces, resPods)
// in one namespace ("" for all), answered with the core/v1 and
// discovery/v1 types. NewClient returns the real one; package
// kubeindex/clientsetapi adapts a client-go clientset (a fake one in tests).
//
// It is not a kubernetes.Interface on purpose: the full clientset's scheme
// registers every API group there is, which makes the binary 6 MB larger
// and costs about 4 MiB of resident memory for types DNS never sees.
type API interface {
	List(ctx context.Context, resource, ns string, opts metav1.ListOptions) (runtime.Object, error)
	Watch(ctx context.Context, resource, ns string, opts metav1.ListOptions) (watch.Interface, error)
}

// streamer is the API of NewClient: it can hand out a list's response body,
// which the lister decodes one item at a time (list.go).
type streamer interface {
	stream(ctx context.Context, resource, ns string, opts metav1.ListOptions) (io.ReadCloser, error)
}

// NewClient returns an API client for cfg: the in-cluster configuration by
// default, else cfg.Kubeconfig (and cfg.Context). It does not contact the
// API server.
func NewClient(cfg Config) (API, error) {
	rc, err := restConfig(cfg)
	if err != nil {
		return nil, err
	}
	c, err := newRESTAPI(rc)
	if err != nil {
		return nil, fmt.Errorf("kubeindex: client for %s: %w", rc.Host, err)
	}
	return c, nil
}

// restAPI is the API over REST clients of the core and discovery groups,
// with a scheme of their types alone.
type restAPI struct {
	core, disc *rest.RESTClient
	params     runtime.ParameterCodec
}

var (
	_ API      = (*restAPI)(nil)
	_ streamer = (*restAPI)(nil)
)

// newRESTAPI builds the clients the way client-go's clientset does (one
// HTTP client and one rate limiter shared by both groups), but with a
// scheme that knows core/v1, discovery/v1 and the meta types only.
func newRESTAPI(c *rest.Config) (*restAPI, error) {
	sch := runtime.NewScheme()
	metav1.AddToGroupVersion(sch, schema.GroupVersion{Version: "v1"})
	if err := errors.Join(corev1.AddToScheme(sch), discoveryv1.AddToScheme(sch)); err != nil {
		return nil, fmt.Errorf("scheme: %w", err)
	}
	codecs := rest.CodecFactoryForGeneratedClient(sch, serializer.NewCodecFactory(sch)).WithoutConversion()
	cfg := *c
	if cfg.RateLimiter == nil && cfg.QPS > 0 {
		if cfg.Burst <= 0 {
			return nil, fmt.Errorf("%w: burst must be positive when qps is", ErrBadRateLimit)
		}
		cfg.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(cfg.QPS, cfg.Burst)
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	hc, err := rest.HTTPClientFor(&cfg)
	if err != nil {
		return nil, fmt.Errorf("http client: %w", err)
	}
	group := func(apiPath string, gv schema.GroupVersion) (*rest.RESTClient, error) {
		g := cfg
		g.APIPath, g.GroupVersion, g.NegotiatedSerializer = apiPath, &gv, codecs
		rc, err := rest.RESTClientForConfigAndClient(&g, hc)
		if err != nil {
			return nil, fmt.Errorf("%s client: %w", gv, err)
		}
		return rc, nil
	}
	a := &restAPI{params: runtime.NewParameterCodec(sch)}
	if a.core, err = group("/api", corev1.SchemeGroupVersion); err != nil {
		return nil, err
	}
	if a.disc, err = group("/apis", discoveryv1.SchemeGroupVersion); err != nil {
		return nil, err
	}
	return a, nil
}

// ErrBadRateLimit: the client's rate limit settings cannot work.
var ErrBadRateLimit = errors.New("kubeindex: bad client rate limit")

// errUnknownResource: the store asked for a resource the API does not serve.
var errUnknownResource = errors.New("kubeindex: unknown resource")

// get starts a GET of resource in ns with opts, as the typed clients do.
func (a *restAPI) get(resource, ns string, opts *metav1.ListOptions) (*rest.Request, error) {
	rc := a.core
	if resource == resEndpointSlices {
		rc = a.disc
	}
	switch resource {
	case resServices, resEndpointSlices, resNamespaces, resPods:
	default:
		return nil, fmt.Errorf("%w: %s", errUnknownResource, resource)
	}
	var timeout time.Duration
	if opts.TimeoutSeconds != nil {
		timeout = time.Duration(*opts.TimeoutSeconds) * time.Second
	}
	return rc.Get().
		UseProtobufAsDefault().
		NamespaceIfScoped(ns, ns != "").
		Resource(resource).
		VersionedParams(opts, a.params).
		Timeout(timeout), nil
}

// List lists resource into its typed list, decoded whole (the lister's
// fallback when a list cannot be streamed).
func (a *restAPI) List(ctx context.Context, resource, ns string, opts metav1.ListOptions) (runtime.Object, error) {
	var list runtime.Object
	switch resource {
	case resServices:
		list = &corev1.ServiceList{}
	case resEndpointSlices:
		list = &discoveryv1.EndpointSliceList{}
	case resNamespaces:
		list = &corev1.NamespaceList{}
	case resPods:
		list = &corev1.PodList{}
	}
	req, err := a.get(resource, ns, &opts)
	if err != nil {
		return nil, err
	}
	if err := req.Do(ctx).Into(list); err != nil {
		return nil, err // an API status error, as the typed client returns it
	}
	return list, nil
}

// Watch watches resource.
func (a *restAPI) Watch(ctx context.Context, resource, ns string, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	req, err := a.get(resource, ns, &opts)
	if err != nil {
		return nil, err
	}
	return req.Watch(ctx)
}

// stream returns the body of a list of resource, undecoded.
func (a *restAPI) stream(ctx context.Context, resource, ns string, opts metav1.ListOptions) (io.ReadCloser, error) {
	req, err := a.get(resource, ns, &opts)
	if err != nil {
		return nil, err
	}
	return req.Stream(ctx)
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
