// Package resolvertest holds the helpers every clusterdns test shares: DNS
// servers on loopback port 0 with their own handler, a writer that records
// replies, and table cases whose records are zone-file strings compared after
// sorting, with a TTL wildcard.
package resolvertest
