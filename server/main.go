package server

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
)

// Main runs the clusterdns command with args (without the program name) and
// returns the exit code: 0 after a clean shutdown or a successful check, 1
// on a configuration or start error, 2 on a usage error.
func Main(args []string) int {
	return command{stdout: os.Stdout, stderr: os.Stderr, signals: notifySignals, setup: setupProcess}.run(args)
}

// command is Main with its outside world injected, for tests.
type command struct {
	stdout, stderr io.Writer
	// signals subscribes to the process signals Run handles; the returned
	// func unsubscribes.
	signals func() (<-chan os.Signal, func())
	// setup applies process-wide settings (klog routing, the Go memory
	// limit) once the logger exists; nil skips them (tests).
	setup func(*slog.Logger)
}

func notifySignals() (<-chan os.Signal, func()) {
	c := make(chan os.Signal, 4)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	return c, func() { signal.Stop(c) }
}

// listFlag collects a flag given several times.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// cmdFlags are the parsed command line.
type cmdFlags struct {
	config, check, kubeconfig string
	version                   bool
	listen                    listFlag
}

// loader applies the overriding flags to every config file loaded.
func (f *cmdFlags) loader() Loader { return Loader{Listen: f.listen, Kubeconfig: f.kubeconfig} }

func parseFlags(stderr io.Writer, args []string) (*cmdFlags, error) {
	var f cmdFlags
	fs := flag.NewFlagSet("clusterdns", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.config, "config", "", "configuration `file` (default: the embedded local resolver on 127.0.0.1:5353)")
	fs.StringVar(&f.check, "check-config", "", "load and validate `file`, print the result and exit")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig `path`; sets kubernetes.kubeconfig and turns the cluster index on")
	fs.BoolVar(&f.version, "version", false, "print the version and exit")
	fs.Var(&f.listen, "listen", "DNS listen `address` (ip:port) replacing the config's listen; may be repeated")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		err := fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
		fmt.Fprintln(stderr, err)
		fs.Usage()
		return nil, err
	}
	return &f, nil
}

func (c command) run(args []string) int {
	f, err := parseFlags(c.stderr, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if f.version {
		fmt.Fprintf(c.stdout, "clusterdns %s %s\n", buildVersion(), runtime.Version())
		return 0
	}
	loader := f.loader()
	if f.check != "" {
		if _, err := loader.Load(f.check); err != nil {
			fmt.Fprintln(c.stderr, err)
			return 1
		}
		fmt.Fprintf(c.stdout, "%s: OK\n", f.check)
		return 0
	}
	cfg, err := loader.Load(f.config)
	if err != nil {
		fmt.Fprintf(c.stderr, "clusterdns: %v\n", err)
		return 1
	}
	level := new(slog.LevelVar)
	lvl, _ := cfg.Log.level() // validated at load
	level.Set(lvl)
	log := newLogger(c.stderr, cfg.Log.Format, level)
	if c.setup != nil {
		c.setup(log)
	}

	srv, err := New(cfg, Options{Logger: log, LogLevel: level, ConfigFile: f.config, Loader: loader})
	if err != nil {
		log.Error("cannot build the server", "err", err)
		return 1
	}
	sig, stop := c.signals()
	defer stop()
	if err := srv.Start(context.Background()); err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	if err := srv.Run(context.Background(), sig); err != nil {
		log.Error("unclean shutdown", "err", err)
		return 1
	}
	return 0
}

func newLogger(w io.Writer, format string, level slog.Leveler) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == FormatJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
