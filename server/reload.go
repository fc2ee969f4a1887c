package server

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"slices"
	"time"
)

// Reload applies cfg to the running server: stages whose config changed are
// built and started, swapped into the front end in one step, and the ones
// they replace are stopped once in-flight queries had time to finish.
// Unchanged stages are kept (a cache keeps its entries, the index its
// informers), except that a new forward stage empties the cache. Changes to listen, limits, http and log output need a restart
// and are only logged. On error the running configuration stays as it was.
func (s *Server) Reload(cfg *Config) error {
	if cfg == nil || cfg.listen == nil {
		return fmt.Errorf("reload: config was not loaded with ParseConfig or LoadConfig")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateRunning {
		return fmt.Errorf("reload: %w", ErrNotRunning)
	}
	if err := s.reload(cfg); err != nil {
		s.m.reloads.WithLabelValues("failure").Inc()
		s.log.Error("reload failed, keeping the running configuration", "config", cfg.name, "err", err)
		return err
	}
	s.m.reloads.WithLabelValues("success").Inc()
	return nil
}

func (s *Server) reload(cfg *Config) error {
	old := s.current.Load()
	rb, err := s.buildStages(cfg, old)
	if err != nil {
		return fmt.Errorf("reload %s: %w", cfg.name, err)
	}
	if err := startStages(s.runCtx, rb.fresh); err != nil {
		return fmt.Errorf("reload %s: %w", cfg.name, err)
	}
	changed := rb.changed
	if cfg.Lameduck != s.cfg.Lameduck {
		changed = append(changed, "lameduck")
	}
	if s.opts.LogLevel != nil && cfg.Log.Level != s.cfg.Log.Level {
		lvl, _ := cfg.Log.level() // validated at load
		s.opts.LogLevel.Set(lvl)
		changed = append(changed, "log.level")
	}
	if restart := s.needsRestart(cfg); len(restart) > 0 {
		s.log.Warn("configuration changes that need a restart were not applied", "fields", restart)
	}
	if len(rb.fresh) > 0 || len(rb.retired) > 0 {
		s.front.SetHandler(rb.next.chain)
		s.current.Store(rb.next)
		s.retire(rb.retired, s.running.Limits.QueryTimeout)
	}
	rb.next.fwd.CheckLoops() // the upstreams, or where they forward, may have changed
	s.cfg = cfg
	if len(changed) == 0 {
		s.log.Info("configuration reloaded, nothing changed", "config", cfg.name)
	} else {
		s.log.Info("configuration reloaded", "config", cfg.name, "changed", changed)
	}
	return nil
}

// needsRestart names the changed settings that only apply at start.
func (s *Server) needsRestart(cfg *Config) []string {
	was := s.running
	var r []string
	if !slices.Equal(was.Listen, cfg.Listen) {
		r = append(r, "listen")
	}
	if was.Limits != cfg.Limits {
		r = append(r, "limits")
	}
	if was.HTTP != cfg.HTTP {
		r = append(r, "http")
	}
	if was.Log.Format != cfg.Log.Format {
		r = append(r, "log.format")
	}
	if was.Log.Queries != cfg.Log.Queries {
		r = append(r, "log.queries")
	}
	if s.opts.LogLevel == nil && was.Log.Level != cfg.Log.Level {
		r = append(r, "log.level")
	}
	return r
}

// retire stops stages a reload replaced, after grace (queries already inside
// them finish) or at once when Shutdown begins.
func (s *Server) retire(list []named, grace time.Duration) {
	if len(list) == 0 {
		return
	}
	s.wg.Go(func() {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.done:
		}
		ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		if err := stopStages(ctx, list); err != nil {
			s.log.Warn("stopping replaced stages", "err", err)
		}
	})
}

// ReloadFile re-reads Options.ConfigFile through the Loader and applies it.
// An invalid file is logged with its file:line error and the running
// configuration is kept. Without a config file there is nothing to reload.
func (s *Server) ReloadFile() error {
	name := s.opts.ConfigFile
	if name == "" {
		s.log.Info("no config file to reload")
		return nil
	}
	data, err := os.ReadFile(name)
	if err != nil {
		err = fmt.Errorf("read config: %w", err)
		s.m.reloads.WithLabelValues("failure").Inc()
		s.log.Error("reload failed, keeping the running configuration", "err", err)
		return err
	}
	return s.reloadData(name, data)
}

func (s *Server) reloadData(name string, data []byte) error {
	h := sha256.Sum256(data)
	s.fileHash.Store(&h)
	cfg, err := s.opts.Loader.Parse(name, data)
	if err != nil {
		s.m.reloads.WithLabelValues("failure").Inc()
		s.log.Error("invalid configuration, keeping the running one", "err", err)
		return err
	}
	return s.Reload(cfg)
}

// watch reloads the config file when its content changes. Polling a hash
// needs no dependency and sees edits that inotify misses (ConfigMap symlink
// swaps, editors that replace the file).
func (s *Server) watch(path string, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		data, err := os.ReadFile(path)
		if err != nil {
			if msg := err.Error(); msg != lastErr {
				s.log.Warn("cannot read config file", "err", err)
				lastErr = msg
			}
			continue
		}
		lastErr = ""
		if h := sha256.Sum256(data); s.fileHash.Load() != nil && *s.fileHash.Load() == h {
			continue
		}
		s.log.Info("config file changed, reloading", "config", path)
		_ = s.reloadData(path, data)
	}
}
