package server

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/clusterdns/clusterdns/cache"
	"github.com/clusterdns/clusterdns/forward"
	"github.com/clusterdns/clusterdns/kubeindex"
)

// base keeps test configs away from /etc/resolv.conf and fixed ports.
const base = "listen: [\"127.0.0.1:0\"]\nforward: {upstreams: [\"127.0.0.1:5399\"]}\n"

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"empty file", "", `clusterdns.yaml: empty configuration`},
		{"only comments", "# nothing\n", `clusterdns.yaml: empty configuration`},
		{"null document", "---\n", `clusterdns.yaml:2: empty configuration`},
		{"list document", "- a\n- b\n", `clusterdns.yaml:1: the document must be a mapping of settings, got a list`},
		{"scalar document", "hello\n", `clusterdns.yaml:1: the document must be a mapping of settings, got "hello"`},
		{"two documents", "listen: [\"127.0.0.1:0\"]\n---\ncache: {}\n", `clusterdns.yaml:3: a second YAML document`},
		{"tab indent", "cache:\n\tsize: 5\n", `clusterdns.yaml:2: tab characters must not be used for indentation`},
		{"syntax", "cache: {size: 5\nlog: {}\n", `clusterdns.yaml:1: invalid YAML: did not find expected ',' or '}'`},
		{"syntax first line", "a: b: c\n", `clusterdns.yaml:1: invalid YAML: mapping values are not allowed`},
		{"unknown top", base + "lsiten: []\n", `clusterdns.yaml:3: lsiten: unknown field (did you mean "listen"?)`},
		{"unknown nested", base + "cache:\n  enabled: true\n  sise: 5\n", `clusterdns.yaml:5: cache.sise: unknown field (did you mean "size"?)`},
		{"unknown far", base + "cache: {frobnicate: 1}\n", `clusterdns.yaml:3: cache.frobnicate: unknown field`},
		{"case typo", base + "cache: {maxttl: 5s}\n", `cache.maxttl: unknown field (did you mean "maxTTL"?)`},
		{"unknown deep", base + "cache:\n  prefetch:\n    amont: 3\n", `clusterdns.yaml:5: cache.prefetch.amont: unknown field (did you mean "amount"?)`},
		{"unknown kube", base + "kubernetes:\n  zone: cluster.local\n  podz: verified\n", `clusterdns.yaml:5: kubernetes.podz: unknown field (did you mean "pods"?)`},
		{"duplicate key", base + "cache:\n  size: 5\n  size: 6\n", `clusterdns.yaml:5: cache.size: duplicate key (first set on line 4)`},
		{"duplicate top", base + "log: {}\nlog: {}\n", `clusterdns.yaml:4: log: duplicate key (first set on line 3)`},
		{"duplicate zone", base + "forward:\n", `clusterdns.yaml:3: forward: duplicate key (first set on line 2)`},
		{"string for list", "listen: \"127.0.0.1:53\"\n", `clusterdns.yaml:1: listen: must be a list, got "127.0.0.1:53"`},
		{"list for scalar", base + "cache: {size: [1]}\n", `clusterdns.yaml:3: cache.size: must be an integer, got a list`},
		{"string for int", base + "cache:\n  size: lots\n", `clusterdns.yaml:4: cache.size: must be an integer, got "lots"`},
		{"string for bool", base + "log: {queries: maybe}\n", `clusterdns.yaml:3: log.queries: must be true or false, got "maybe"`},
		{"scalar for mapping", base + "cache: on\n", `clusterdns.yaml:3: cache: must be a mapping, got "on"`},
		{"missing scalar", base + "log:\n  level:\n", `clusterdns.yaml:4: log.level: missing value`},
		{"int duration", base + "lameduck: 5\n", `clusterdns.yaml:3: lameduck: must be a duration with a unit, such as "5s", got 5`},
		{"bad duration", base + "limits: {queryTimeout: soon}\n", `clusterdns.yaml:3: limits.queryTimeout: must be a duration such as "5s" or "1m30s", got "soon"`},
		{"merge key", base + "cache:\n  <<: {size: 1}\n", `clusterdns.yaml:4: cache.<<: merge keys (<<) are not supported`},
		{"policy", "listen: [\"127.0.0.1:0\"]\nforward:\n  upstreams: [\"127.0.0.1:5399\"]\n  policy: fastest\n", `clusterdns.yaml:4: forward.policy: must be random, round_robin or sequential, got "fastest"`},
		{"cache size", base + "cache:\n  size: 0\n", `clusterdns.yaml:4: cache.size: must be at least 1, got 0`},
		{"prefetch", base + "cache:\n  prefetch:\n    percentage: 100\n", `clusterdns.yaml:5: cache.prefetch.percentage: must be between 1 and 99, got 100`},
		{"kube ttl", base + "kubernetes:\n  ttl: 99999\n", `clusterdns.yaml:4: kubernetes.ttl: must be between 0 and 3600, got 99999`},
		{"kube pods", base + "kubernetes: {pods: all}\n", `clusterdns.yaml:3: kubernetes.pods: must be disabled, insecure or verified, got "all"`},
		{"no listen", "listen: []\nforward: {upstreams: [\"127.0.0.1:5399\"]}\n", `clusterdns.yaml:1: listen: at least one address is required`},
		{"bad listen", "listen:\n  - 127.0.0.1:0\n  - localhost:53\n", `clusterdns.yaml:3: listen[1]: must be an IP address and port, got "localhost:53"`},
		{"listen port", "listen: [\"127.0.0.1:99999\"]\n", `clusterdns.yaml:1: listen[0]: port must be a number from 0 to 65535, got "99999"`},
		{"listen no port", "listen: [\"127.0.0.1\"]\n", `clusterdns.yaml:1: listen[0]: must be "ip:port"`},
		{"listen twice", "listen: [\"127.0.0.1:53\", \"127.0.0.1:53\"]\n", `listen[1]: 127.0.0.1:53 is listed twice`},
		{"limits", base + "limits:\n  tcpPipeline: 0\n", `clusterdns.yaml:4: limits.tcpPipeline: must be at least 1, got 0`},
		{"lameduck", base + "lameduck: -1s\n", `clusterdns.yaml:3: lameduck: must not be negative`},
		{"log level", base + "log: {level: loud}\n", `clusterdns.yaml:3: log.level: must be debug, info, warn or error, got "loud"`},
		{"log format", base + "log:\n  format: xml\n", `clusterdns.yaml:4: log.format: must be text or json, got "xml"`},
		{"http addr", base + "http:\n  ready: 8181\n", `clusterdns.yaml:4: http.ready: must be "host:port" (":8181" for every address) or "" to disable, got "8181"`},
		{"no upstreams", "listen: [\"127.0.0.1:0\"]\nforward:\n  upstreams: []\n", `clusterdns.yaml:3: forward.upstreams: at least one upstream is required`},
		{"bad upstream", "listen: [\"127.0.0.1:0\"]\nforward:\n  upstreams:\n    - 127.0.0.1:53\n    - not-an-address\n", `clusterdns.yaml:5: forward.upstreams[1]: `},
		{"missing resolv.conf", "listen: [\"127.0.0.1:0\"]\nforward:\n  upstreams: [/nonexistent/resolv.conf]\n", `clusterdns.yaml:3: forward.upstreams[0]: `},
		{"bad zone upstream", "listen: [\"127.0.0.1:0\"]\nforward:\n  upstreams: [\"127.0.0.1:5399\"]\n  zones:\n    corp.example.:\n      - 10.0.0.1:53\n      - nope\n", `clusterdns.yaml:7: forward.zones["corp.example."][1]: `},
		{"empty zone", "listen: [\"127.0.0.1:0\"]\nforward:\n  upstreams: [\"127.0.0.1:5399\"]\n  zones:\n    corp.example.: []\n", `clusterdns.yaml:5: forward.zones["corp.example."]: at least one upstream is required`},
		{"zones list", "listen: [\"127.0.0.1:0\"]\nforward:\n  zones: [a]\n", `clusterdns.yaml:3: forward.zones: must be a mapping, got a list`},
		{"loop same address", "listen: [\"127.0.0.1:5353\"]\nforward:\n  upstreams:\n    - 10.0.0.1:53\n    - 127.0.0.1:5353\n", `clusterdns.yaml:5: forward.upstreams[1]: forwarding loop: 127.0.0.1:5353 is our own listen address 127.0.0.1:5353`},
		{"loop unspecified", "listen: [\":5353\"]\nforward:\n  upstreams: [\"127.0.0.2:5353\"]\n", `clusterdns.yaml:3: forward.upstreams[0]: forwarding loop: 127.0.0.2:5353 is our own listen address [::]:5353`},
		{"loop v6", "listen: [\"[::]:53\"]\nforward:\n  upstreams: [\"[::1]:53\"]\n", `forward.upstreams[0]: forwarding loop`},
		{"loop zone", "listen: [\"127.0.0.1:5353\"]\nforward:\n  upstreams: [\"127.0.0.1:5399\"]\n  zones:\n    corp.: [\"127.0.0.1:5353\"]\n", `clusterdns.yaml:5: forward.zones["corp."][0]: forwarding loop`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("clusterdns.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error:\n  %v\nwant it to contain:\n  %s", err, tc.want)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *ConfigError", err)
			}
		})
	}
}

func TestConfigLoopIsSentinel(t *testing.T) {
	_, err := ParseConfig("c.yaml", []byte("listen: [\"127.0.0.1:53\"]\nforward: {upstreams: [\"127.0.0.1\"]}\n"))
	if !errors.Is(err, ErrForwardingLoop) {
		t.Fatalf("got %v, want ErrForwardingLoop", err)
	}
	// a different port or IP is not a loop
	for _, up := range []string{"127.0.0.1:54", "127.0.0.2:53"} {
		if _, err := ParseConfig("c.yaml", []byte("listen: [\"127.0.0.1:53\"]\nforward: {upstreams: [\""+up+"\"]}\n")); err != nil {
			t.Errorf("upstream %s: %v", up, err)
		}
	}
}

func TestConfigLoopFromResolvConf(t *testing.T) {
	rc := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(rc, []byte("nameserver 10.0.0.1\nnameserver 127.0.0.1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := ParseConfig("c.yaml", []byte("listen: [\"0.0.0.0:53\"]\nforward:\n  upstreams: [\""+rc+"\"]\n"))
	if err == nil || !strings.Contains(err.Error(), "c.yaml:3: forward.upstreams[0]: forwarding loop: 127.0.0.1:53 (from "+rc+")") {
		t.Fatalf("got %v, want a loop through %s", err, rc)
	}
	cfg, err := ParseConfig("c.yaml", []byte("listen: [\"127.0.0.1:5353\"]\nforward:\n  upstreams: [\""+rc+"\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.AddrPort{netip.MustParseAddrPort("10.0.0.1:53"), netip.MustParseAddrPort("127.0.0.1:53")}
	if got := cfg.Upstreams(); !reflect.DeepEqual(got, want) {
		t.Fatalf("upstreams %v, want %v", got, want)
	}
	if got := cfg.forwardConfig().Upstreams; !reflect.DeepEqual(got, []string{"10.0.0.1:53", "127.0.0.1:53"}) {
		t.Fatalf("forward stage gets %v, want the resolved addresses", got)
	}
}

func TestConfigDecodes(t *testing.T) {
	kube := func(f func(*kubeindex.Config)) *kubeindex.Config {
		k := kubeindex.Default()
		f(&k)
		return &k
	}
	for _, tc := range []struct {
		name   string
		yaml   string
		loader Loader
		want   func(*Config)
	}{
		{name: "minimal", yaml: base, want: func(c *Config) {}},
		{name: "everything", yaml: `
listen: ["127.0.0.1:0", "[::1]:5353"]
limits: {maxInflight: 50, queryTimeout: 2s, udpSockets: 2, tcpConns: 10, tcpIdleTimeout: 3s, tcpPipeline: 4}
lameduck: 250ms
log: {level: debug, format: json, queries: true}
http: {metrics: "127.0.0.1:0", health: "", ready: ":8181", debug: "127.0.0.1:6060"}
cache:
  size: 50
  maxTTL: 1h
  prefetch: {amount: 0}
  serveStale: 1m
forward:
  upstreams: ["127.0.0.1:5399", "10.0.0.2"]
  zones: {"corp.example.": ["10.0.0.3:53"]}
  policy: sequential
kubernetes:
  zone: cluster.example
  pods: verified
`, want: func(c *Config) {
			c.Listen = []string{"127.0.0.1:0", "[::1]:5353"}
			c.Limits = Limits{MaxInflight: 50, QueryTimeout: 2 * time.Second, UDPSockets: 2, TCPConns: 10, TCPIdleTimeout: 3 * time.Second, TCPPipeline: 4}
			c.Lameduck = 250 * time.Millisecond
			c.Log = Log{Level: "debug", Format: "json", Queries: true}
			c.HTTP = HTTP{Metrics: "127.0.0.1:0", Ready: ":8181", Debug: "127.0.0.1:6060"}
			c.Cache.Size = 50
			c.Cache.MaxTTL = time.Hour
			c.Cache.Prefetch.Amount = 0
			c.Cache.ServeStale = time.Minute
			c.Forward.Upstreams = []string{"127.0.0.1:5399", "10.0.0.2"}
			c.Forward.Zones = map[string][]string{"corp.example.": {"10.0.0.3:53"}}
			c.Forward.Policy = forward.PolicySequential
			c.Kubernetes = kube(func(k *kubeindex.Config) { k.Zone = "cluster.example"; k.Pods = kubeindex.PodsVerified })
		}},
		{name: "cache off", yaml: base + "cache: {enabled: false}\n", want: func(c *Config) { c.Cache.Enabled = false }},
		{name: "empty sections", yaml: base + "cache:\nlog: {}\nkubernetes:\n", want: func(c *Config) { c.Kubernetes = kube(func(*kubeindex.Config) {}) }},
		{name: "anchors", yaml: base + "limits: &l {tcpConns: 7}\n", want: func(c *Config) { c.Limits.TCPConns = 7 }},
		{name: "-listen", yaml: base, loader: Loader{Listen: []string{"127.0.0.1:0", "[::1]:0"}}, want: func(c *Config) {
			c.Listen = []string{"127.0.0.1:0", "[::1]:0"}
		}},
		{name: "-kubeconfig turns the index on", yaml: base, loader: Loader{Kubeconfig: "/k/config"}, want: func(c *Config) {
			c.Kubernetes = kube(func(k *kubeindex.Config) { k.Kubeconfig = "/k/config" })
		}},
		{name: "-kubeconfig keeps the section", yaml: base + "kubernetes: {zone: c.example, kubeconfig: /old}\n", loader: Loader{Kubeconfig: "/k/config"}, want: func(c *Config) {
			c.Kubernetes = kube(func(k *kubeindex.Config) { k.Zone = "c.example"; k.Kubeconfig = "/k/config" })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.loader.Parse("c.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			want := DefaultConfig()
			want.Listen = []string{"127.0.0.1:0"}
			want.Forward.Upstreams = []string{"127.0.0.1:5399"}
			tc.want(&want)
			g := *got
			g.name, g.listen, g.upstreams, g.zones = "", nil, nil, nil
			if !reflect.DeepEqual(g, want) {
				t.Fatalf("decoded\n %+v\nwant\n %+v", g, want)
			}
			if got.Name() != "c.yaml" {
				t.Errorf("Name() = %q", got.Name())
			}
		})
	}
}

func TestConfigListenFlagErrors(t *testing.T) {
	_, err := Loader{Listen: []string{"nonsense"}}.Parse("c.yaml", []byte(base))
	if err == nil || !strings.Contains(err.Error(), "-listen flag: listen[0]: must be") {
		t.Fatalf("got %v, want the -listen flag named", err)
	}
	_, err = Loader{Listen: []string{"127.0.0.1:5399"}}.Parse("c.yaml", []byte(base))
	if !errors.Is(err, ErrForwardingLoop) {
		t.Fatalf("got %v, want a forwarding loop through -listen", err)
	}
}

func TestConfigParsedFields(t *testing.T) {
	cfg, err := ParseConfig("c.yaml", []byte("listen: [\"127.0.0.1:53\", \"[::1]:53\", \":54\"]\nforward:\n  upstreams: [\"10.0.0.1\"]\n  zones: {\"corp.\": [\"10.0.0.2:5300\"]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	wantListen := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:53"), netip.MustParseAddrPort("[::1]:53"), netip.MustParseAddrPort("[::]:54")}
	if got := cfg.ListenAddrs(); !reflect.DeepEqual(got, wantListen) {
		t.Errorf("listen %v, want %v", got, wantListen)
	}
	fc := cfg.forwardConfig()
	if !reflect.DeepEqual(fc.Upstreams, []string{"10.0.0.1:53"}) || !reflect.DeepEqual(fc.Zones, map[string][]string{"corp.": {"10.0.0.2:5300"}}) {
		t.Errorf("forward config %v %v", fc.Upstreams, fc.Zones)
	}
}

func TestEmbeddedDefault(t *testing.T) {
	if _, err := os.Stat("/etc/resolv.conf"); err != nil {
		t.Skipf("the default forwards to /etc/resolv.conf: %v", err)
	}
	cfg, err := Loader{}.Load("")
	if err != nil {
		t.Fatalf("embedded default: %v", err)
	}
	want := DefaultConfig()
	want.HTTP = HTTP{Metrics: "127.0.0.1:9153", Health: "127.0.0.1:8080", Ready: "127.0.0.1:8181"}
	g := *cfg
	g.name, g.listen, g.upstreams, g.zones = "", nil, nil, nil
	if !reflect.DeepEqual(g, want) {
		t.Fatalf("default\n %+v\nwant\n %+v", g, want)
	}
	if cfg.Kubernetes != nil || !cfg.Cache.Enabled || cfg.Cache.Config != cache.Default() {
		t.Fatalf("default: kubernetes %v, cache %+v", cfg.Kubernetes, cfg.Cache)
	}
	if len(cfg.Upstreams()) == 0 {
		t.Fatal("default: no upstream read from /etc/resolv.conf")
	}
}

func TestLoadConfigFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(base+"cache: {size: x}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(p); err == nil || !strings.HasPrefix(err.Error(), p+":3: cache.size:") {
		t.Fatalf("got %v, want an error at %s:3", err, p)
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}
