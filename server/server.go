package server

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clusterdns/clusterdns/kubeindex"
	"github.com/clusterdns/clusterdns/server/frontend"
)

// Options are the parts of a Server that do not come from the config file.
type Options struct {
	// Logger receives every log line; nil discards them.
	Logger *slog.Logger
	// LogLevel, when set, is the level behind Logger; reloads apply
	// log.level to it. Without it a change of log.level needs a restart.
	LogLevel *slog.LevelVar
	// Registry is where every metric is registered and what /metrics
	// serves; nil creates one. It must not hold clusterdns metrics already.
	Registry *prometheus.Registry
	// Version is the clusterdns_build_info version; "" reads it from the
	// binary's build info.
	Version string
	// KubeClient, when set, is the API client of the cluster index instead
	// of one built from kubernetes.kubeconfig (tests pass a fake clientset
	// through kubeindex/clientsetapi).
	KubeClient kubeindex.API
	// ConfigFile is re-read on SIGHUP and polled for changes; "" means
	// there is no file (the embedded default): nothing to reload.
	ConfigFile string
	// Loader parses every reloaded file, so command-line overrides persist.
	Loader Loader
	// WatchInterval is how often ConfigFile's content hash is checked;
	// 0 means 2 s, negative disables watching (SIGHUP still reloads).
	WatchInterval time.Duration
}

const (
	defaultWatchInterval = 2 * time.Second
	// stopTimeout bounds stopping stages a reload replaced.
	stopTimeout = 10 * time.Second
	// shutdownSlack is added to lameduck and the query timeout to bound a
	// signal-driven shutdown.
	shutdownSlack = 5 * time.Second
)

const (
	stateNew = iota
	stateRunning
	stateStopped
)

// Server is the clusterdns process: the stages built from a Config, the DNS
// front end and the HTTP endpoints, with reload and graceful shutdown.
type Server struct {
	opts  Options
	log   *slog.Logger
	reg   *prometheus.Registry
	m     *metrics
	front *frontend.Frontend // never nil

	current   atomic.Pointer[stages] // the serving generation; never nil after New
	started   atomic.Bool            // Start completed
	lameduck  atomic.Bool            // shutdown begun: /ready answers 503
	httpAddrs atomic.Pointer[map[string]netip.AddrPort]
	fileHash  atomic.Pointer[[sha256.Size]byte] // content last loaded from ConfigFile

	mu      sync.Mutex // serializes Start, Reload and Shutdown; guards the fields below
	state   int
	cfg     *Config // applied to the stages
	running *Config // the front end and HTTP were started with; they need a restart to change
	http    []*httpListener

	done      chan struct{} // closed when Shutdown begins: stops the watcher, retires replaced stages at once
	runCtx    context.Context
	cancelRun context.CancelFunc // ends runCtx after everything stopped
	wg        sync.WaitGroup     // every goroutine the server starts
}

// New builds the stages and the front end from cfg, which must come from
// ParseConfig, LoadConfig or a Loader. Nothing runs until Start.
func New(cfg *Config, opts Options) (*Server, error) {
	if cfg == nil || cfg.listen == nil {
		return nil, errors.New("server: config was not loaded with ParseConfig or LoadConfig")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.Version == "" {
		opts.Version = buildVersion()
	}
	if opts.WatchInterval == 0 {
		opts.WatchInterval = defaultWatchInterval
	}
	s := &Server{
		opts:    opts,
		log:     opts.Logger,
		reg:     opts.Registry,
		cfg:     cfg,
		running: cfg,
		done:    make(chan struct{}),
	}
	s.runCtx, s.cancelRun = context.WithCancel(context.Background())
	s.m = newMetrics(s.reg, opts.Version)
	rb, err := s.buildStages(cfg, nil)
	if err != nil {
		s.cancelRun()
		return nil, err
	}
	s.front, err = frontend.New(frontendConfig(cfg), rb.next.chain, frontend.Options{Metrics: s.m.front, Logger: s.log.With("stage", "frontend")})
	if err != nil {
		s.cancelRun()
		return nil, fmt.Errorf("frontend: %w", err)
	}
	s.current.Store(rb.next)
	if opts.ConfigFile != "" {
		if data, err := os.ReadFile(opts.ConfigFile); err == nil {
			h := sha256.Sum256(data)
			s.fileHash.Store(&h)
		}
	}
	return s, nil
}

func frontendConfig(c *Config) frontend.Config {
	return frontend.Config{
		Listen:         c.Listen,
		UDPSockets:     c.Limits.UDPSockets,
		MaxInflight:    c.Limits.MaxInflight,
		QueryTimeout:   c.Limits.QueryTimeout,
		TCPMaxConns:    c.Limits.TCPConns,
		TCPIdleTimeout: c.Limits.TCPIdleTimeout,
		TCPPipeline:    c.Limits.TCPPipeline,
		LogQueries:     c.Log.Queries,
	}
}

// Start starts the HTTP endpoints, then the stages, then the DNS front end,
// and the config-file watcher. HTTP comes first so /health answers and
// /ready explains what is missing (an index still listing) while the stages
// start; DNS comes last so no query meets a stage that is not running. On
// error everything started is stopped.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateNew {
		return errors.New("server: Start called twice or after Shutdown")
	}
	s.state = stateStopped // unless everything below succeeds
	if err := ctx.Err(); err != nil {
		s.cancelRun()
		return err
	}
	ls, err := s.listenHTTP(s.running.HTTP)
	if err != nil {
		s.cancelRun()
		return err
	}
	s.http = ls
	addrs := make(map[string]netip.AddrPort)
	for _, l := range ls {
		for _, n := range l.names {
			addrs[n] = l.addr
		}
	}
	s.httpAddrs.Store(&addrs)
	s.serveHTTP(ls)
	abort := func(err error, started []named) error {
		stopCtx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		_ = stopStages(stopCtx, started)
		_ = stopHTTP(stopCtx, ls)
		s.cancelRun()
		s.wg.Wait() // the HTTP servers end with stopHTTP
		return err
	}
	st := s.current.Load()
	// Stages and the front end get runCtx, not ctx: their background work
	// must outlive the caller's start deadline and ends with Shutdown.
	if err := startStages(s.runCtx, st.list()); err != nil {
		return abort(err, nil)
	}
	if err := s.front.Start(s.runCtx); err != nil {
		return abort(fmt.Errorf("start dns: %w", err), st.list())
	}
	if s.opts.ConfigFile != "" && s.opts.WatchInterval > 0 {
		s.wg.Go(func() { s.watch(s.opts.ConfigFile, s.opts.WatchInterval) })
	}
	s.state = stateRunning
	s.started.Store(true)
	st.fwd.CheckLoops() // now that we answer, our own probes can come back to us
	s.log.Info("clusterdns started", "config", s.cfg.name, "dns", s.front.Addrs(), "http", addrs, "stages", stageNames(st))
	return nil
}

func stageNames(st *stages) []string {
	var n []string
	for _, x := range st.list() {
		n = append(n, x.name)
	}
	return n
}

// DNSAddrs are the bound DNS addresses (each serves UDP and TCP).
func (s *Server) DNSAddrs() []netip.AddrPort { return s.front.Addrs() }

// HTTPAddrs maps each enabled endpoint ("metrics", "health", "ready",
// "debug") to its bound address; empty before Start.
func (s *Server) HTTPAddrs() map[string]netip.AddrPort {
	if p := s.httpAddrs.Load(); p != nil {
		return maps.Clone(*p)
	}
	return map[string]netip.AddrPort{}
}

// Registry is the registry /metrics serves.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Ready reports whether the server should receive traffic, and if not, one
// reason per line: "lameduck", "starting", or "stage: why".
func (s *Server) Ready() (bool, []string) {
	var why []string
	switch {
	case s.lameduck.Load():
		why = append(why, "lameduck")
	case !s.started.Load():
		why = append(why, "starting")
	}
	if st := s.current.Load(); st != nil {
		why = append(why, st.readiness()...)
	}
	return len(why) == 0, why
}

// Shutdown turns /ready to 503 at once, keeps answering DNS for the
// configured lameduck period, then stops the front end (draining in-flight
// queries), the stages and the HTTP endpoints. Everything is bounded by
// ctx; when ctx ends early, the remaining steps stop without waiting.
// Calling it again, or before Start, is harmless.
func (s *Server) Shutdown(ctx context.Context) error {
	s.lameduck.Store(true)
	s.mu.Lock()
	switch s.state {
	case stateStopped:
		s.mu.Unlock()
		return nil
	case stateNew:
		s.state = stateStopped
		close(s.done)
		s.cancelRun()
		s.mu.Unlock()
		return nil
	}
	s.state = stateStopped
	close(s.done)
	errs := s.stop(ctx)
	s.mu.Unlock() // the watcher may be waiting for it to find the server stopped
	waited := make(chan struct{})
	go func() { s.wg.Wait(); close(waited) }() // ends with the last server goroutine
	select {
	case <-waited:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("shutdown: %w", ctx.Err()))
	}
	err := errors.Join(errs...)
	if err != nil {
		s.log.Warn("clusterdns stopped with errors", "err", err)
	} else {
		s.log.Info("clusterdns stopped")
	}
	return err
}

// stop runs lameduck and stops everything; s.mu is held.
func (s *Server) stop(ctx context.Context) []error {
	if d := s.cfg.Lameduck; d > 0 {
		s.log.Info("lameduck: still answering DNS, /ready reports 503", "for", d)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	var errs []error
	if err := s.front.Stop(ctx); err != nil {
		errs = append(errs, fmt.Errorf("stop dns: %w", err))
	}
	errs = append(errs, stopStages(ctx, s.current.Load().list()))
	errs = append(errs, stopHTTP(ctx, s.http))
	s.cancelRun()
	return errs
}

// Run handles signals for a started server until SIGTERM or SIGINT arrives
// on sig, or ctx ends; then it shuts down, bounded by lameduck plus the
// query timeout and a margin. SIGHUP reloads the config file.
func (s *Server) Run(ctx context.Context, sig <-chan os.Signal) error {
	for {
		select {
		case <-ctx.Done():
			s.log.Info("shutting down", "reason", ctx.Err())
			return s.shutdownBounded()
		case sg, ok := <-sig:
			switch {
			case !ok:
				sig = nil
			case sg == syscall.SIGHUP:
				s.log.Info("SIGHUP: reloading configuration")
				_ = s.ReloadFile()
			default:
				s.log.Info("shutting down", "signal", sg.String())
				return s.shutdownBounded()
			}
		}
	}
}

func (s *Server) shutdownBounded() error {
	s.lameduck.Store(true) // before waiting for a reload in progress
	s.mu.Lock()
	bound := s.cfg.Lameduck + s.cfg.Limits.QueryTimeout + shutdownSlack
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	return s.Shutdown(ctx)
}
