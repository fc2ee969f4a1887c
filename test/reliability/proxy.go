package reliability

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Fault is what APIProxy does to requests passing through it.
type Fault struct {
	// Delay holds every new request this long before passing it on.
	Delay time.Duration
	// Status, when non-zero, answers every new request with this HTTP
	// status and a Kubernetes Status body instead of passing it on.
	Status int
}

// APIProxy sits between a client and kube-apiserver: plain HTTP toward the
// client (no credentials needed: it adds the target's), TLS with the
// target's credentials toward the API server. It injects Faults, closes
// watches on demand and can answer the next watch of each resource with 410
// Gone, which makes a client-go reflector relist.
type APIProxy struct {
	URL string // http://127.0.0.1:port

	srv   *http.Server
	rt    http.RoundTripper
	fault atomic.Pointer[Fault]

	mu       sync.Mutex // guards following
	watches  map[*context.CancelFunc]struct{}
	goneNext bool            // answer the next plain watch of each resource with 410
	gone     map[string]bool // resources already sent their 410 since goneNext was set
	lists    map[string]int  // resource -> lists (and initial-events watches) passed on
	watchN   map[string]int  // resource -> plain watches passed on
	faulted  int             // requests answered with Fault.Status or delayed
	expired  int             // watches answered 410
	errs     int             // requests the target did not answer
	wg       sync.WaitGroup  // the server goroutine
}

// StartAPIProxy proxies to the API server of target on 127.0.0.1:0.
func StartAPIProxy(target *rest.Config) (*APIProxy, error) {
	u, err := url.Parse(target.Host)
	if err != nil {
		return nil, fmt.Errorf("proxy: target %s: %w", target.Host, err)
	}
	rt, err := rest.TransportFor(target)
	if err != nil {
		return nil, fmt.Errorf("proxy: transport: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxy: listen: %w", err)
	}
	p := &APIProxy{
		URL:     "http://" + ln.Addr().String(),
		rt:      rt,
		watches: map[*context.CancelFunc]struct{}{},
		lists:   map[string]int{},
		watchN:  map[string]int{},
	}
	p.fault.Store(&Fault{})
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = u.Host
		},
		Transport:     rt,
		FlushInterval: -1, // watches stream
		ErrorLog:      log.New(io.Discard, "", 0),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p.mu.Lock()
			p.errs++
			p.mu.Unlock()
			writeStatus(w, http.StatusBadGateway, "ServiceUnavailable", "proxy: "+err.Error())
		},
	}
	p.srv = &http.Server{Handler: p.handler(rp), ReadHeaderTimeout: 10 * time.Second}
	p.wg.Go(func() { _ = p.srv.Serve(ln) })
	return p, nil
}

// SetFault applies f to the requests that arrive from now on.
func (p *APIProxy) SetFault(f Fault) { p.fault.Store(&f) }

// CloseWatches ends every watch in progress (the client sees a clean end of
// stream and watches again) and returns how many it ended.
func (p *APIProxy) CloseWatches() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.watches {
		(*c)()
	}
	return len(p.watches)
}

// ExpireWatches answers the next plain watch of every resource with 410 Gone
// and closes the watches in progress, so every reflector relists.
func (p *APIProxy) ExpireWatches() int {
	p.mu.Lock()
	p.goneNext = true
	p.gone = map[string]bool{}
	p.mu.Unlock()
	return p.CloseWatches()
}

// ProxyStats are the proxy's counters.
type ProxyStats struct {
	Lists   map[string]int // per resource path: lists and initial-events watches
	Watches map[string]int // per resource path: plain watches
	Faulted int
	Expired int
	Errors  int
}

// Stats returns a copy of the counters.
func (p *APIProxy) Stats() ProxyStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := ProxyStats{Lists: map[string]int{}, Watches: map[string]int{}, Faulted: p.faulted, Expired: p.expired, Errors: p.errs}
	for k, v := range p.lists {
		s.Lists[k] = v
	}
	for k, v := range p.watchN {
		s.Watches[k] = v
	}
	return s
}

// Close ends the watches and the server and waits for it.
func (p *APIProxy) Close() error {
	p.SetFault(Fault{})
	p.CloseWatches()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := p.srv.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, p.srv.Close())
	}
	p.wg.Wait()
	utilnet.CloseIdleConnectionsFor(p.rt)
	return err
}

// Kubeconfig writes a kubeconfig for the proxy (no credentials) into dir.
func (p *APIProxy) Kubeconfig(dir string) (string, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["proxy"] = &clientcmdapi.Cluster{Server: p.URL}
	cfg.AuthInfos["anonymous"] = &clientcmdapi.AuthInfo{}
	cfg.Contexts["proxy"] = &clientcmdapi.Context{Cluster: "proxy", AuthInfo: "anonymous"}
	cfg.CurrentContext = "proxy"
	path := dir + "/proxy.kubeconfig"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", fmt.Errorf("proxy kubeconfig: %w", err)
	}
	return path, os.Chmod(path, 0o600)
}

// resource is the path of a request without its namespace segment, so a
// namespaced and a cluster-wide watch of one kind count together.
func resource(path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	for i := 0; i+2 < len(parts); i++ {
		if parts[i] == "namespaces" {
			parts = append(parts[:i], parts[i+2:]...)
			break
		}
	}
	return "/" + strings.Join(parts, "/")
}

func (p *APIProxy) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		watch := q.Get("watch") == "true" || q.Get("watch") == "1"
		initial := q.Get("sendInitialEvents") == "true"
		res := resource(r.URL.Path)
		f := *p.fault.Load()
		if f.Delay > 0 || f.Status != 0 {
			p.mu.Lock()
			p.faulted++
			p.mu.Unlock()
		}
		if f.Delay > 0 {
			t := time.NewTimer(f.Delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if f.Status != 0 {
			writeStatus(w, f.Status, "InternalError", "injected by the reliability test proxy")
			return
		}
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		p.mu.Lock()
		switch {
		case watch && !initial && p.goneNext && !p.gone[res]:
			p.gone[res] = true
			p.expired++
			p.mu.Unlock()
			writeStatus(w, http.StatusGone, "Expired", "too old resource version (injected by the reliability test proxy)")
			return
		case watch && !initial:
			p.watchN[res]++
		case r.Method == http.MethodGet:
			p.lists[res]++
		}
		if watch {
			p.watches[&cancel] = struct{}{}
			defer func() {
				p.mu.Lock()
				delete(p.watches, &cancel)
				p.mu.Unlock()
			}()
		}
		p.mu.Unlock()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// writeStatus answers like the API server does on an error.
func writeStatus(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":%q,"reason":%q,"code":%d}`, msg, reason, code)
}
