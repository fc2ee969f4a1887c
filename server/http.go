package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// HTTP server bounds: the endpoints answer small requests, so slow clients
// are cut off early. Profiles (/debug/pprof/profile?seconds=30) need the
// longer write bound.
const (
	httpReadHeaderTimeout = 5 * time.Second
	httpReadTimeout       = 10 * time.Second
	httpWriteTimeout      = 30 * time.Second
	httpDebugWriteTimeout = 5 * time.Minute
	httpIdleTimeout       = 60 * time.Second
	httpMaxHeaderBytes    = 64 << 10
)

// httpListener is one address serving one or more endpoints.
type httpListener struct {
	names []string // endpoints served, for logs and HTTPAddrs
	addr  netip.AddrPort
	srv   *http.Server
	ln    net.Listener
}

// listenHTTP binds one listener per distinct address of cfg; endpoints that
// share an address share its mux. On error nothing stays open.
func (s *Server) listenHTTP(cfg HTTP) ([]*httpListener, error) {
	var (
		order []string
		muxes = make(map[string]*http.ServeMux)
		names = make(map[string][]string)
		debug = make(map[string]bool)
	)
	for _, e := range cfg.endpoints() {
		if e.addr == "" {
			continue
		}
		mux, ok := muxes[e.addr]
		if !ok {
			mux = http.NewServeMux()
			muxes[e.addr] = mux
			order = append(order, e.addr)
		}
		names[e.addr] = append(names[e.addr], e.name)
		switch e.name {
		case "metrics":
			mux.Handle(e.path, promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{
				ErrorLog:            slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
				MaxRequestsInFlight: 4,
				Timeout:             httpWriteTimeout - time.Second,
			}))
		case "health":
			mux.HandleFunc(e.path, s.serveHealth)
		case "ready":
			mux.HandleFunc(e.path, s.serveReady)
		case "debug":
			debug[e.addr] = true
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
	}
	var out []*httpListener
	for _, addr := range order {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			closeHTTP(out)
			return nil, fmt.Errorf("listen http %s (%s): %w", addr, strings.Join(names[addr], ", "), err)
		}
		write := httpWriteTimeout
		if debug[addr] {
			write = httpDebugWriteTimeout
		}
		out = append(out, &httpListener{
			names: names[addr],
			addr:  ln.Addr().(*net.TCPAddr).AddrPort(),
			ln:    ln,
			srv: &http.Server{
				Handler:           muxes[addr],
				ReadHeaderTimeout: httpReadHeaderTimeout,
				ReadTimeout:       httpReadTimeout,
				WriteTimeout:      write,
				IdleTimeout:       httpIdleTimeout,
				MaxHeaderBytes:    httpMaxHeaderBytes,
				ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
			},
		})
	}
	return out, nil
}

// serveHTTP runs every listener on a goroutine the server owns.
func (s *Server) serveHTTP(ls []*httpListener) {
	for _, l := range ls {
		s.wg.Go(func() {
			if err := l.srv.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("http server failed", "addr", l.addr, "endpoints", l.names, "err", err)
			}
		})
	}
}

// stopHTTP shuts the listeners down gracefully until ctx, then closes them.
func stopHTTP(ctx context.Context, ls []*httpListener) error {
	var errs []error
	for _, l := range ls {
		if err := l.srv.Shutdown(ctx); err != nil {
			_ = l.srv.Close()
			errs = append(errs, fmt.Errorf("stop http %s: %w", l.addr, err))
		}
	}
	return errors.Join(errs...)
}

// closeHTTP closes listeners that never served.
func closeHTTP(ls []*httpListener) {
	for _, l := range ls {
		_ = l.ln.Close()
	}
}

// serveHealth is liveness: the process runs and serves HTTP.
func (s *Server) serveHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("OK\n"))
}

// serveReady is readiness: 200 when every stage is ready and we are not
// shutting down, else 503 with one line per reason.
func (s *Server) serveReady(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	ok, why := s.Ready()
	if ok {
		_, _ = w.Write([]byte("OK\n"))
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte(strings.Join(why, "\n") + "\n"))
}
