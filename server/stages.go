package server

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/clusterdns/clusterdns/cache"
	"github.com/clusterdns/clusterdns/forward"
	"github.com/clusterdns/clusterdns/kubeindex"
	"github.com/clusterdns/clusterdns/resolver"
)

// stages is one generation of the query chain: the stage objects, the
// configs they were built from (to tell on reload what changed) and the
// chain compiled from them. It is immutable once published.
type stages struct {
	cache     *cache.Cache // nil when disabled
	cacheCfg  cache.Config
	cacheSkip []string        // SkipZones the cache was built with
	kube      *kubeindex.Kube // nil when there is no kubernetes section
	kubeCfg   kubeindex.Config
	fwd       *forward.Forward // never nil
	fwdCfg    forward.Config   // with resolv.conf paths resolved
	chain     resolver.Handler // cache -> kubeindex -> forward
}

// named is a stage with the name readiness and logs use for it.
type named struct {
	name  string
	stage any
}

// list returns the stages present, in chain order.
func (st *stages) list() []named {
	var l []named
	if st.cache != nil {
		l = append(l, named{"cache", st.cache})
	}
	if st.kube != nil {
		l = append(l, named{"kubeindex", st.kube})
	}
	return append(l, named{"forward", st.fwd})
}

// rebuild is the outcome of building a generation from a config.
type rebuild struct {
	next    *stages
	fresh   []named // built now: to start before the swap
	retired []named // of the old generation, replaced: to stop after it
	changed []string
}

// buildStages builds the stages cfg asks for, keeping each stage of old
// whose config is unchanged (a kept cache keeps its entries, a kept index
// its informers); the cache is also rebuilt when forward is, since its
// entries came from the old upstreams. old may be nil. On error nothing built is left running
// (nothing is started here).
func (s *Server) buildStages(cfg *Config, old *stages) (*rebuild, error) {
	if old == nil {
		old = &stages{}
	}
	rb := &rebuild{next: &stages{}}
	next := rb.next

	next.fwdCfg = cfg.forwardConfig()
	if old.fwd != nil && reflect.DeepEqual(old.fwdCfg, next.fwdCfg) {
		next.fwd = old.fwd
	} else {
		f, err := forward.New(next.fwdCfg, forward.Options{Metrics: s.m.forward, Logger: s.log.With("stage", "forward")})
		if err != nil {
			return nil, fmt.Errorf("forward: %w", err)
		}
		next.fwd = f
		rb.changed = append(rb.changed, "forward")
	}

	if cfg.Kubernetes != nil {
		next.kubeCfg = *cfg.Kubernetes
		if old.kube != nil && reflect.DeepEqual(old.kubeCfg, next.kubeCfg) {
			next.kube = old.kube
		} else {
			k, err := kubeindex.New(next.kubeCfg, kubeindex.Options{Metrics: s.m.kube, Logger: s.log.With("stage", "kubeindex"), Client: s.opts.KubeClient})
			if err != nil {
				return nil, fmt.Errorf("kubernetes: %w", err)
			}
			k.SetChaser(chaser{s})
			next.kube = k
			rb.changed = append(rb.changed, "kubernetes")
		}
	} else if old.kube != nil {
		rb.changed = append(rb.changed, "kubernetes")
	}

	if cfg.Cache.Enabled {
		next.cacheCfg = cfg.Cache.Config
		if next.kube != nil {
			next.cacheSkip = next.kube.Zones()
		}
		// A new forward stage means other upstreams or settings: the entries
		// came from the old ones, so the cache starts empty. An index change
		// alone keeps it, unless the zones it skips change.
		if old.cache != nil && next.fwd == old.fwd && reflect.DeepEqual(old.cacheCfg, next.cacheCfg) && slices.Equal(old.cacheSkip, next.cacheSkip) {
			next.cache = old.cache
		} else {
			c, err := cache.New(next.cacheCfg, cache.Options{Metrics: s.m.cache, Logger: s.log.With("stage", "cache"), SkipZones: next.cacheSkip})
			if err != nil {
				return nil, fmt.Errorf("cache: %w", err)
			}
			next.cache = c
			rb.changed = append(rb.changed, "cache")
		}
	} else if old.cache != nil {
		rb.changed = append(rb.changed, "cache")
	}

	rb.fresh = missing(next.list(), old.list())
	rb.retired = missing(old.list(), next.list())
	next.chain = next.compile()
	return rb, nil
}

// missing returns the stages of a that are not in b, in a's order.
func missing(a, b []named) []named {
	var out []named
	for _, x := range a {
		if !slices.ContainsFunc(b, func(y named) bool { return y.stage == x.stage }) {
			out = append(out, x)
		}
	}
	return out
}

// compile links the chain in its fixed order: cache -> kubeindex -> forward.
// Wrap is called anew on every generation; stages do not keep next.
func (st *stages) compile() resolver.Handler {
	var wraps []resolver.Stage
	if st.cache != nil {
		wraps = append(wraps, st.cache.Wrap)
	}
	if st.kube != nil {
		wraps = append(wraps, st.kube.Wrap)
	}
	return resolver.Compile(st.fwd, wraps...)
}

// startStages starts stages back to front, so a stage that passes queries on
// finds the ones after it running. On error the ones started are stopped.
func startStages(ctx context.Context, list []named) error {
	for i := len(list) - 1; i >= 0; i-- {
		r, ok := list[i].stage.(resolver.Runner)
		if !ok {
			continue
		}
		if err := r.Start(ctx); err != nil {
			_ = stopStages(ctx, list[i+1:])
			return fmt.Errorf("start %s: %w", list[i].name, err)
		}
	}
	return nil
}

// stopStages stops stages front to back, each bounded by ctx.
func stopStages(ctx context.Context, list []named) error {
	var errs []error
	for _, n := range list {
		if r, ok := n.stage.(resolver.Runner); ok {
			if err := r.Stop(ctx); err != nil {
				errs = append(errs, fmt.Errorf("stop %s: %w", n.name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// readiness lists the stages that are not ready, as "name: why".
func (st *stages) readiness() []string {
	var why []string
	for _, n := range st.list() {
		if r, ok := n.stage.(resolver.Readier); ok {
			if ok, w := r.Ready(); !ok {
				if !strings.HasPrefix(w, n.name+": ") {
					w = n.name + ": " + w
				}
				why = append(why, w)
			}
		}
	}
	return why
}
