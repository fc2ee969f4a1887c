package frontend

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/clusterdns/clusterdns/resolver"
)

// Config tunes the listeners. Zero values take the defaults named on each
// field; negative values are errors.
type Config struct {
	// Listen holds "ip:port" addresses ("127.0.0.1:53", "[::]:53"), or
	// ":port" for a dual-stack wildcard. Port 0 picks one free port shared by
	// UDP and TCP. Host names are refused: binding must not depend on DNS.
	Listen []string
	// UDPSockets is the number of SO_REUSEPORT sockets per address, each
	// with its own reader; 0 means runtime.NumCPU().
	UDPSockets int
	// MaxInflight bounds the queries being answered at once; 0 means 4096.
	MaxInflight int
	// QueryTimeout is the deadline of each query's context; 0 means 4s,
	// under the 5 s default stub timeout so a SERVFAIL reaches the client.
	QueryTimeout time.Duration
	// TCPMaxConns bounds open TCP connections; 0 means 1024.
	TCPMaxConns int
	// TCPIdleTimeout closes a TCP connection with no query started for
	// that long; it also bounds each reply write. 0 means 10s.
	TCPIdleTimeout time.Duration
	// TCPPipeline bounds the queries in flight on one TCP connection; the
	// connection is not read further until one completes. 0 means 32.
	TCPPipeline int
	// LogQueries logs one line per query at Info level.
	LogQueries bool
}

const (
	defaultMaxInflight    = 4096
	defaultQueryTimeout   = 4 * time.Second
	defaultTCPMaxConns    = 1024
	defaultTCPIdleTimeout = 10 * time.Second
	defaultTCPPipeline    = 32
	// partialReadTimeout bounds the time to receive the rest of a TCP
	// message once its first byte arrived (slowloris).
	partialReadTimeout = 2 * time.Second
)

// ErrConfig is wrapped by every configuration error New returns; the error
// is a *resolver.FieldError naming the field.
var ErrConfig = errors.New("invalid frontend config")

func fieldErr(field, format string, args ...any) error {
	return &resolver.FieldError{Field: field, Err: fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)}
}

// withDefaults validates c and fills in the defaults.
func (c Config) withDefaults() (Config, error) {
	if len(c.Listen) == 0 {
		return c, fieldErr("listen", "no address")
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"udp_sockets", int64(c.UDPSockets)},
		{"max_inflight", int64(c.MaxInflight)},
		{"query_timeout", int64(c.QueryTimeout)},
		{"tcp_max_conns", int64(c.TCPMaxConns)},
		{"tcp_idle_timeout", int64(c.TCPIdleTimeout)},
		{"tcp_pipeline", int64(c.TCPPipeline)},
	} {
		if f.v < 0 {
			return c, fieldErr(f.name, "must not be negative")
		}
	}
	c.Listen = append([]string(nil), c.Listen...)
	if c.UDPSockets == 0 {
		c.UDPSockets = runtime.NumCPU()
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = defaultMaxInflight
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = defaultQueryTimeout
	}
	if c.TCPMaxConns == 0 {
		c.TCPMaxConns = defaultTCPMaxConns
	}
	if c.TCPIdleTimeout == 0 {
		c.TCPIdleTimeout = defaultTCPIdleTimeout
	}
	if c.TCPPipeline == 0 {
		c.TCPPipeline = defaultTCPPipeline
	}
	return c, nil
}
