package server

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/clusterdns/clusterdns/cache"
	"github.com/clusterdns/clusterdns/forward"
	"github.com/clusterdns/clusterdns/kubeindex"
	"github.com/clusterdns/clusterdns/resolver"
	"github.com/clusterdns/clusterdns/server/frontend"
)

// metrics holds every collector of the process. They are created once, with
// the Server, and handed to each rebuilt stage, so a reload neither
// re-registers nor resets a series.
type metrics struct {
	front   *frontend.Metrics
	cache   *cache.Metrics
	forward *forward.Metrics
	kube    *kubeindex.Metrics
	reloads *prometheus.CounterVec // result: success, failure
}

func newMetrics(reg *prometheus.Registry, version string) *metrics {
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace:   resolver.Namespace,
		Name:        "build_info",
		Help:        "Always 1; the labels tell the version and the Go version it was built with.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	build.Set(1)
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: resolver.Namespace,
		Name:      "reloads_total",
		Help:      "Configuration reloads by result (success, failure).",
	}, []string{"result"})
	reloads.WithLabelValues("success")
	reloads.WithLabelValues("failure")
	reg.MustRegister(build, reloads)
	return &metrics{
		front:   frontend.NewMetrics(reg),
		cache:   cache.NewMetrics(reg),
		forward: forward.NewMetrics(reg),
		kube:    kubeindex.NewMetrics(reg),
		reloads: reloads,
	}
}

// buildVersion is the main module's version from the binary's build info.
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
