package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// A full relist is provoked by restarting kube-apiserver (run.sh does that
// with test/cluster's down.sh/up.sh) after advancing etcd's revision while
// it is down (etcdbump): the restarted server's watch cache then starts
// after the clients' last resource version, so their watches fail with
// 410 Gone and every informer lists again. Without the write the watches
// resume where they were and nothing is relisted. The lists command
// confirms the relist happened.

// etcdBumpKey is outside /registry: kube-apiserver never reads it.
const etcdBumpKey = "/clusterdns-bench/relist"

// runEtcdBump is the "etcdbump" command: one write to etcd through its JSON
// gateway, so its revision moves past every client's resource version.
func runEtcdBump(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("etcdbump", flag.ContinueOnError)
	addr := fs.String("etcd", "", "etcd client address, 127.0.0.1:port")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := loopbackOnly(*addr); err != nil {
		return err
	}
	body, err := json.Marshal(map[string][]byte{"key": []byte(etcdBumpKey), "value": []byte(time.Now().String())})
	if err != nil {
		return fmt.Errorf("encode put: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+*addr+"/v3/kv/put", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("etcd put: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("etcd put: %w", err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("etcd put: %s: %s", resp.Status, out)
	}
	fmt.Fprintf(os.Stderr, "etcdbump: %s\n", bytes.TrimSpace(out))
	return nil
}

// runSentinel is the "sentinel" command: create a headless Service with one
// endpoint at -ip (with -pod: a running Pod with that IP) in the first bench
// namespace. A server answering it has seen every write before it.
func runSentinel(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("sentinel", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "admin kubeconfig of the test control plane")
	name := fs.String("name", "", "Service name")
	ip := fs.String("ip", "", "endpoint address")
	pod := fs.Bool("pod", false, "create a Pod with this IP instead of a Service")
	if err := fs.Parse(args); err != nil {
		return err
	}
	addr, err := netip.ParseAddr(*ip)
	if err != nil || !addr.Is4() || *name == "" {
		return fmt.Errorf("need -name and an IPv4 -ip, got %q %q", *name, *ip)
	}
	cs, err := clientFor(*kubeconfig, 10, 20)
	if err != nil {
		return err
	}
	if *pod {
		return loadPod(ctx, cs, sentinelPod(*name, addr))
	}
	return createHeadless(ctx, cs, benchNamespace(0), *name, addr)
}

// runLists is the "lists" command: record how many LIST requests for
// Services, EndpointSlices and Pods the API server has served since it started.
func runLists(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("lists", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "admin kubeconfig of the test control plane")
	phase := fs.String("phase", "relist", "label of the record")
	results := fs.String("results", "", "results file to append to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *results == "" {
		return errors.New("-results is required")
	}
	cs, err := clientFor(*kubeconfig, 10, 20)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	body, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("get apiserver metrics: %w", err)
	}
	lists, err := countLists(body, "services", "endpointslices", "pods")
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "lists: %v\n", lists)
	return appendRecord(*results, record{Kind: "lists", Impl: "kube-apiserver", Phase: *phase, Lists: lists})
}

// countLists sums apiserver_request_total over LIST requests per resource.
func countLists(metrics []byte, resources ...string) (map[string]int64, error) {
	out := make(map[string]int64, len(resources))
	for _, r := range resources {
		out[r] = 0
	}
	sc := bufio.NewScanner(bytes.NewReader(metrics))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "apiserver_request_total{") || !strings.Contains(line, `verb="LIST"`) {
			continue
		}
		for _, r := range resources {
			if !strings.Contains(line, `resource="`+r+`"`) {
				continue
			}
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				return nil, fmt.Errorf("parse %q: %w", line, err)
			}
			out[r] += int64(v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	return out, nil
}
