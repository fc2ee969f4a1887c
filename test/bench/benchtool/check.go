package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// The sanity check before any load: every cluster server must answer a few
// names of the loaded objects exactly as expected (the queries command
// writes them with their answers), so a scenario never compares servers
// that answer differently, e.g. one not verifying pod records.
const (
	checkFile     = "check.txt"
	checkNXDomain = "NXDOMAIN"
	checkTries    = 3
)

// checkLine is one expected answer: "name A addr[,addr...]" or
// "name A NXDOMAIN".
type checkLine struct {
	name  string
	want  []string // sorted addresses; empty: NXDOMAIN
	check answerCheck
}

func parseCheckLine(line string) (checkLine, error) {
	f := strings.Fields(line)
	if len(f) != 3 || f[1] != "A" {
		return checkLine{}, fmt.Errorf("check line %q: want \"name A addr[,addr]|NXDOMAIN\"", line)
	}
	c := checkLine{name: dns.Fqdn(f[0])}
	if f[2] == checkNXDomain {
		c.check = func(m *dns.Msg) bool { return m.Rcode == dns.RcodeNameError }
		return c, nil
	}
	for _, a := range strings.Split(f[2], ",") {
		ip, err := netip.ParseAddr(a)
		if err != nil || !ip.Is4() {
			return checkLine{}, fmt.Errorf("check line %q: bad IPv4 address %q", line, a)
		}
		c.want = append(c.want, ip.String())
	}
	slices.Sort(c.want)
	c.check = hasExactly(c.want...)
	return c, nil
}

func (c checkLine) String() string {
	if len(c.want) == 0 {
		return c.name + " A " + checkNXDomain
	}
	return c.name + " A " + strings.Join(c.want, ",")
}

// describe summarises a reply for a mismatch message.
func describe(m *dns.Msg) string {
	var ans []string
	for _, rr := range m.Answer {
		ans = append(ans, strings.ReplaceAll(rr.String(), "\t", " "))
	}
	return dns.RcodeToString[m.Rcode] + " [" + strings.Join(ans, "; ") + "]"
}

// runCheck is the "check" command: ask every server each name of the check
// file and fail, naming each mismatch, unless all answer as expected.
func runCheck(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	file := fs.String("file", "", "check file written by the queries command")
	var targets []dnsTarget
	serverFlag(fs, &targets)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(targets) == 0 || *file == "" {
		return errors.New("need -server and -file")
	}
	f, err := os.Open(*file)
	if err != nil {
		return fmt.Errorf("open check file: %w", err)
	}
	defer f.Close()
	var lines []checkLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		l, err := parseCheckLine(sc.Text())
		if err != nil {
			return err
		}
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", *file, err)
	}
	c := &dns.Client{Net: "udp", Timeout: time.Second}
	var bad []string
	for _, t := range targets {
		for _, l := range lines {
			m := new(dns.Msg)
			m.SetQuestion(l.name, dns.TypeA)
			var r *dns.Msg
			for try := 0; try < checkTries && r == nil && ctx.Err() == nil; try++ {
				r, _, err = c.ExchangeContext(ctx, m, t.addr)
			}
			switch {
			case r == nil:
				bad = append(bad, fmt.Sprintf("%s: %s: no reply: %v", t.name, l, err))
			case !l.check(r):
				bad = append(bad, fmt.Sprintf("%s: want %s, got %s", t.name, l, describe(r)))
			}
		}
	}
	names := make([]string, len(targets))
	for i, t := range targets {
		names[i] = t.name
	}
	if len(bad) > 0 {
		return fmt.Errorf("%d of %d answers wrong:\n  %s", len(bad), len(lines)*len(targets), strings.Join(bad, "\n  "))
	}
	fmt.Fprintf(os.Stderr, "check: %s answer all %d check names as expected\n", strings.Join(names, " and "), len(lines))
	return nil
}
