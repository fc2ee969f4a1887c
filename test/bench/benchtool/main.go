// Command benchtool holds the small programs of the load harness
// (test/bench/run.sh): a fast stub upstream, the object loader, the
// query-file generators, the dnsperf runner that measures server CPU per
// query, the DNS programming-latency poller and the report writer.
//
// Design constraint: it only ever talks to loopback (the stub, the servers
// under test, the test control plane from test/cluster), and every command is
// bounded in time, so a harness run cannot leak traffic or hang.
//
//	benchtool stub     -listen 127.0.0.1:0 -portfile F
//	benchtool load     -kubeconfig K -services N -endpoints M [-pods P]
//	benchtool queries  -kubeconfig K -dir D
//	benchtool missfile -prefix P -n N -out F
//	benchtool wait     -server ADDR -name NAME
//	benchtool check    -server NAME=ADDR ... -file F
//	benchtool perf     -server ADDR -pid PID -data F -results R ...
//	benchtool mem      -pid PID -results R ...
//	benchtool proglat  -kubeconfig K -server NAME=ADDR ... -results R
//	benchtool report   -results R
//	benchtool ports    -n N
//	benchtool sentinel -kubeconfig K -name N -ip IP [-pod]
//	benchtool lists    -kubeconfig K -results R
//	benchtool etcdbump -etcd 127.0.0.1:PORT
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

var commands = map[string]func(context.Context, []string) error{
	"stub":     runStub,
	"load":     runLoad,
	"queries":  runQueries,
	"missfile": runMissFile,
	"wait":     runWait,
	"perf":     runPerf,
	"mem":      runMem,
	"proglat":  runProgLat,
	"report":   runReport,
	"ports":    runPorts,
	"sentinel": runSentinel,
	"lists":    runLists,
	"etcdbump": runEtcdBump,
	"check":    runCheck,
}

func main() {
	if len(os.Args) < 2 || commands[os.Args[1]] == nil {
		fmt.Fprintln(os.Stderr, "usage: benchtool stub|load|queries|missfile|wait|check|perf|mem|proglat|report|ports|sentinel|lists|etcdbump [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := commands[os.Args[1]](ctx, os.Args[2:])
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchtool %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// loopbackOnly rejects any address that is not on loopback: the harness
// must never send traffic off the machine.
func loopbackOnly(addr string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return fmt.Errorf("address %s: %w", addr, err)
	}
	if !ap.Addr().IsLoopback() {
		return fmt.Errorf("address %s is not on loopback", addr)
	}
	return nil
}

// writeFileAtomic writes data to a temporary file and renames it, so a
// reader polling for path never sees it half written.
func writeFileAtomic(path, data string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.WriteString(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename to %s: %w", path, err)
	}
	return nil
}

// runPorts is the "ports" command: print n distinct loopback ports that are
// free for both UDP and TCP. All are held until all are found, then
// released; a server started right after binds them.
func runPorts(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("ports", flag.ContinueOnError)
	n := fs.Int("n", 1, "ports")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var held []io.Closer
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	var ports []int
	for attempt := 0; len(ports) < *n; attempt++ {
		if attempt > 100 {
			return fmt.Errorf("found %d of %d free ports", len(ports), *n)
		}
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("listen udp: %w", err)
		}
		held = append(held, pc)
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			continue // TCP side taken; try another
		}
		held = append(held, ln)
		ports = append(ports, pc.LocalAddr().(*net.UDPAddr).Port)
	}
	for _, p := range ports {
		fmt.Println(p)
	}
	return nil
}
