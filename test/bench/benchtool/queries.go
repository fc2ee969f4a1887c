package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// externalNames are what pods commonly resolve outside the cluster; with
// ndots:5 each is first tried under every search domain.
var externalNames = []string{
	"google.com", "api.github.com", "s3.amazonaws.com", "login.microsoftonline.com",
	"registry-1.docker.io", "pypi.org", "sts.amazonaws.com", "www.example.com",
}

// Query-file names; run.sh refers to them.
const (
	clusterFile = "cluster.txt"
	junkFile    = "junk.txt"
	hitFile     = "hit.txt"
	hitDomain   = "hit.bench.example"
	missDomain  = "miss.bench.example"
)

// runQueries is the "queries" command: it writes the cluster, junk and
// cache-hit query files (dnsperf format, "name type" per line) and the check
// file (check.go) from the objects the loader created, read back from the
// API.
func runQueries(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("queries", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "admin kubeconfig of the test control plane")
	zone := fs.String("zone", "cluster.local", "cluster domain")
	dir := fs.String("dir", "", "directory for the query files")
	hits := fs.Int("hit", 1000, "distinct names in the cache-hit file")
	seed := fs.Uint64("seed", 1, "shuffle seed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("-dir is required")
	}
	cs, err := clientFor(*kubeconfig, 100, 200)
	if err != nil {
		return err
	}
	sel := metav1.ListOptions{LabelSelector: benchLabel + "=true"}
	svcs, err := cs.CoreV1().Services("").List(ctx, sel)
	if err != nil {
		return fmt.Errorf("list services: %w", err)
	}
	eps, err := cs.DiscoveryV1().EndpointSlices("").List(ctx, sel)
	if err != nil {
		return fmt.Errorf("list endpointslices: %w", err)
	}
	if len(svcs.Items) == 0 {
		return errors.New("no bench services found: run load first")
	}
	firstEndpoint := make(map[string]string) // "ns/service" -> an endpoint address
	for _, es := range eps.Items {
		key := es.Namespace + "/" + es.Labels["kubernetes.io/service-name"]
		if _, ok := firstEndpoint[key]; !ok && len(es.Endpoints) > 0 && len(es.Endpoints[0].Addresses) > 0 {
			firstEndpoint[key] = es.Endpoints[0].Addresses[0]
		}
	}
	pods, err := listPodIPs(ctx, cs)
	if err != nil {
		return err
	}
	z := strings.TrimSuffix(*zone, ".")
	rng := rand.New(rand.NewPCG(*seed, *seed))

	// Cluster answers: an A query for every Service (ClusterIP or headless),
	// an SRV query for a third of them and a PTR for another third.
	var cluster []string
	namespaces := map[string]bool{}
	for i, s := range svcs.Items {
		namespaces[s.Namespace] = true
		name := s.Name + "." + s.Namespace + ".svc." + z + "."
		cluster = append(cluster, name+" A")
		switch i % 3 {
		case 0:
			cluster = append(cluster, "_http._tcp."+name+" SRV")
		case 1:
			ip := s.Spec.ClusterIP
			if ip == "None" || ip == "" {
				ip = firstEndpoint[s.Namespace+"/"+s.Name]
			}
			if ip == "" {
				continue
			}
			rev, err := dns.ReverseAddr(ip)
			if err != nil {
				return fmt.Errorf("reverse of %s: %w", ip, err)
			}
			cluster = append(cluster, rev+" PTR")
		}
	}

	// Pod records, when Pods are loaded (the servers then verify them): as
	// many A queries as there are SRV or PTR ones, spread over the Pods.
	for _, p := range spread(pods, (len(svcs.Items)+2)/3) {
		cluster = append(cluster, podName(p.ip, p.ns, z)+" A")
	}

	// Search-path junk as a pod in namespace ns sends it with ndots:5: every
	// external name under each search domain (A and AAAA), and other
	// namespaces' Services under the pod's own namespace.
	nsList := sortedKeys(namespaces)
	var junk []string
	for _, ns := range nsList {
		for _, ext := range externalNames {
			for _, suffix := range []string{ns + ".svc." + z, "svc." + z, z} {
				junk = append(junk, ext+"."+suffix+". A", ext+"."+suffix+". AAAA")
			}
		}
	}
	for i, s := range svcs.Items {
		if i%10 != 0 {
			continue
		}
		other := nsList[rng.IntN(len(nsList))]
		junk = append(junk, s.Name+"."+s.Namespace+"."+other+".svc."+z+". A")
	}

	var hit []string
	for i := range *hits {
		hit = append(hit, fmt.Sprintf("h%d.%s. A", i, hitDomain))
	}

	check := checkLines(svcs.Items, pods, z)
	if err := writeLines(filepath.Join(*dir, checkFile), check); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "queries: %s: %d names\n", checkFile, len(check))

	for _, f := range []struct {
		name  string
		lines []string
	}{{clusterFile, cluster}, {junkFile, junk}, {hitFile, hit}} {
		rng.Shuffle(len(f.lines), func(i, j int) { f.lines[i], f.lines[j] = f.lines[j], f.lines[i] })
		if err := writeLines(filepath.Join(*dir, f.name), f.lines); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "queries: %s: %d queries\n", f.name, len(f.lines))
	}
	return nil
}

// podIP is a loaded Pod's namespace and address.
type podIP struct {
	ns string
	ip netip.Addr
}

// listPodIPs returns the bench Pods that have an IPv4 address, in pages: a
// single list of 50,000 Pods would be hundreds of megabytes of JSON.
func listPodIPs(ctx context.Context, cs kubernetes.Interface) ([]podIP, error) {
	var out []podIP
	opts := metav1.ListOptions{LabelSelector: benchLabel + "=true", Limit: 5000}
	for {
		l, err := cs.CoreV1().Pods("").List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list pods: %w", err)
		}
		for _, p := range l.Items {
			if ip, err := netip.ParseAddr(p.Status.PodIP); err == nil && ip.Is4() {
				out = append(out, podIP{p.Namespace, ip})
			}
		}
		if l.Continue == "" {
			return out, nil
		}
		opts.Continue = l.Continue
	}
}

// spread returns at most n elements of v, evenly spaced.
func spread[T any](v []T, n int) []T {
	if n >= len(v) {
		return v
	}
	out := make([]T, 0, n)
	for i := range n {
		out = append(out, v[i*len(v)/n])
	}
	return out
}

// checkLines are the names the check command asks every server before any
// load, with their one right answer: a few ClusterIP Services; when Pods
// are loaded, pod records of Pods spread over the set, a Pod's address under
// another namespace and an address no Pod has, both NXDOMAIN in verified
// mode (insecure mode would answer them).
func checkLines(svcs []corev1.Service, pods []podIP, zone string) []string {
	var out []string
	var clusterIP []corev1.Service
	for _, s := range svcs {
		if s.Spec.ClusterIP != "" && s.Spec.ClusterIP != corev1.ClusterIPNone {
			clusterIP = append(clusterIP, s)
		}
	}
	for _, s := range spread(clusterIP, 3) {
		out = append(out, s.Name+"."+s.Namespace+".svc."+zone+". A "+s.Spec.ClusterIP)
	}
	if len(pods) == 0 {
		return out
	}
	for _, p := range spread(pods, 20) {
		out = append(out, podName(p.ip, p.ns, zone)+" A "+p.ip.String())
	}
	p := pods[len(pods)/2]
	for _, q := range pods {
		if q.ns != p.ns {
			out = append(out, podName(p.ip, q.ns, zone)+" A "+checkNXDomain)
			break
		}
	}
	return append(out, podName(addIP(podBase, maxPods-1), p.ns, zone)+" A "+checkNXDomain)
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func writeLines(path string, lines []string) error {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return writeFileAtomic(path, b.String())
}

// runMissFile is the "missfile" command: n names never asked before, each
// once, so every query is a cache miss forwarded to the stub. The prefix
// makes names unique per run.
func runMissFile(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("missfile", flag.ContinueOnError)
	prefix := fs.String("prefix", "", "label prefix unique to the run")
	n := fs.Int("n", 1000000, "names")
	out := fs.String("out", "", "output file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *prefix == "" || *out == "" {
		return errors.New("-prefix and -out are required")
	}
	f, err := os.Create(*out)
	if err != nil {
		return fmt.Errorf("create %s: %w", *out, err)
	}
	w := bufio.NewWriterSize(f, 1<<16)
	for i := range *n {
		fmt.Fprintf(w, "%s-%d.%s. A\n", *prefix, i, missDomain)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", *out, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", *out, err)
	}
	return nil
}
