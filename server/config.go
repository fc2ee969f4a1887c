package server

import (
	"net/netip"
	"time"

	"github.com/clusterdns/clusterdns/cache"
	"github.com/clusterdns/clusterdns/forward"
	"github.com/clusterdns/clusterdns/kubeindex"
)

// Config is one loaded configuration file. A Config returned by ParseConfig,
// LoadConfig or a Loader is a validated snapshot: nothing modifies it
// afterwards, so the server may keep it and compare it with the next one on
// reload. Build one only through those functions; a literal lacks the
// resolved addresses the server needs.
type Config struct {
	// Listen holds the DNS addresses, "ip:port" ("[v6]:port"; ":port" for
	// every address); each serves UDP and TCP.
	Listen []string `yaml:"listen"`
	// Limits bound the front end.
	Limits Limits `yaml:"limits"`
	// Lameduck is how long DNS keeps answering after SIGTERM while /ready
	// already reports 503, so load balancers move away first.
	Lameduck time.Duration `yaml:"lameduck"`
	// Log configures the process logger.
	Log Log `yaml:"log"`
	// HTTP holds the observability listen addresses.
	HTTP HTTP `yaml:"http"`
	// Cache configures the cache stage; present with defaults when absent.
	Cache CacheSection `yaml:"cache"`
	// Forward configures the last stage.
	Forward forward.Config `yaml:"forward"`
	// Kubernetes configures the cluster index; nil (section absent) means no
	// index.
	Kubernetes *kubeindex.Config `yaml:"kubernetes"`

	name      string           // file name used in errors and logs
	listen    []netip.AddrPort // Listen parsed; ":port" is the IPv6 unspecified address
	upstreams []netip.AddrPort // Forward.Upstreams with resolv.conf files read
	zones     map[string][]netip.AddrPort
}

// Limits bound the front end's resources.
type Limits struct {
	// MaxInflight bounds queries being answered at once; more are shed.
	MaxInflight int `yaml:"maxInflight"`
	// QueryTimeout is the deadline of every query.
	QueryTimeout time.Duration `yaml:"queryTimeout"`
	// UDPSockets per listen address (SO_REUSEPORT); 0 means one per CPU.
	UDPSockets int `yaml:"udpSockets"`
	// TCPConns bounds open TCP connections.
	TCPConns int `yaml:"tcpConns"`
	// TCPIdleTimeout closes TCP connections idle this long.
	TCPIdleTimeout time.Duration `yaml:"tcpIdleTimeout"`
	// TCPPipeline bounds queries in flight on one TCP connection.
	TCPPipeline int `yaml:"tcpPipeline"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is text or json.
	Format string `yaml:"format"`
	// Queries logs every query (off by default: it costs per query).
	Queries bool `yaml:"queries"`
}

// HTTP holds listen addresses of the HTTP endpoints; "" disables one.
// Endpoints that share an address are served by one listener.
type HTTP struct {
	Metrics string `yaml:"metrics"` // /metrics
	Health  string `yaml:"health"`  // /health
	Ready   string `yaml:"ready"`   // /ready
	Debug   string `yaml:"debug"`   // /debug/pprof/, only when set
}

// CacheSection is the cache stage's Config plus a switch to turn it off.
type CacheSection struct {
	Enabled      bool `yaml:"enabled"`
	cache.Config `yaml:",inline"`
}

// Log formats accepted in Config.Log.Format.
const (
	FormatText = "text"
	FormatJSON = "json"
)

// DefaultConfig returns the values used for keys a file leaves out. Its
// forward upstreams still name /etc/resolv.conf; it is not a loaded Config.
func DefaultConfig() Config {
	return Config{
		Listen: []string{"127.0.0.1:5353"},
		Limits: Limits{
			MaxInflight:    10000,
			QueryTimeout:   5 * time.Second,
			TCPConns:       1000,
			TCPIdleTimeout: 10 * time.Second,
			TCPPipeline:    32,
		},
		Lameduck: 5 * time.Second,
		Log:      Log{Level: "info", Format: FormatText},
		HTTP:     HTTP{Metrics: ":9153", Health: ":8080", Ready: ":8181"},
		Cache:    CacheSection{Enabled: true, Config: cache.Default()},
		Forward:  forward.Default(),
	}
}

// Name is the file the configuration was loaded from.
func (c *Config) Name() string { return c.name }

// ListenAddrs are the parsed listen addresses.
func (c *Config) ListenAddrs() []netip.AddrPort { return append([]netip.AddrPort(nil), c.listen...) }

// Upstreams are the default upstreams with resolv.conf files read.
func (c *Config) Upstreams() []netip.AddrPort { return append([]netip.AddrPort(nil), c.upstreams...) }

// forwardConfig is the forward stage's Config with every resolv.conf path
// replaced by the addresses read at load, so the stage sees exactly what was
// validated (and a changed resolv.conf shows up as a changed config).
func (c *Config) forwardConfig() forward.Config {
	f := c.Forward
	f.Upstreams = addrStrings(c.upstreams)
	f.Zones = nil
	if len(c.zones) > 0 {
		f.Zones = make(map[string][]string, len(c.zones))
		for z, ups := range c.zones {
			f.Zones[z] = addrStrings(ups)
		}
	}
	return f
}

func addrStrings(aps []netip.AddrPort) []string {
	s := make([]string, len(aps))
	for i, ap := range aps {
		s[i] = ap.String()
	}
	return s
}
