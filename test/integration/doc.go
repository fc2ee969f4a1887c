// Package integration holds the black-box tests of clusterdns against a real
// etcd and kube-apiserver (test/cluster): the whole server, in process from a
// YAML string or as the built binary, queried over real UDP and TCP sockets on
// loopback with miekg/dns and with dig.
//
// Design constraint: the tests see clusterdns only from the outside (DNS,
// HTTP, exit codes, logs) and the cluster only through its API, so they prove
// what users get. Every upstream is a stub started by the test on 127.0.0.1,
// never the machine's resolvers, and every wait is bounded.
package integration
