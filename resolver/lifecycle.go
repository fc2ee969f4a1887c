package resolver

import "context"

// Runner is implemented by stages that own background work (informers,
// health probes, prefetch). Start and Stop are idempotent; Stop returns once
// every goroutine the stage started has ended or ctx is done.
type Runner interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Readier is implemented by stages whose answers are not yet trustworthy
// right after start. Ready returns false and a short human reason (e.g.
// "endpointslices: forbidden") until the stage is ready.
type Readier interface {
	Ready() (ok bool, why string)
}

// Namespace is the Prometheus namespace shared by every clusterdns metric.
const Namespace = "clusterdns"
