package main

import (
	"bufio"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The path as commands: each plan is a list of argv, pure so that a test
// can check that every command names one of the testbed's namespaces and
// every address is in 10.77.0.0/16.

// setupPlan builds A --veth-- R --veth-- B with addresses and routes. R
// forwards; its sysctls are set by this binary in R (child role "sysctl"),
// so the plan needs no procps. rp_filter is off because the delay line
// hands packets back on tun0, which is not the interface their source is
// routed through.
func setupPlan(exe string) [][]string {
	inR := func(args ...string) []string {
		return append([]string{"ip", "netns", "exec", nsR, exe, "testbed", testbedChildArg, "sysctl"}, args...)
	}
	return [][]string{
		{"ip", "netns", "add", nsA},
		{"ip", "netns", "add", nsR},
		{"ip", "netns", "add", nsB},
		// Created inside the namespaces: the root namespace never sees
		// these names, not even for a moment.
		{"ip", "-n", nsA, "link", "add", devA, "type", "veth", "peer", "name", devRA, "netns", nsR},
		{"ip", "-n", nsB, "link", "add", devB, "type", "veth", "peer", "name", devRB, "netns", nsR},
		{"ip", "-n", nsA, "addr", "add", addrA + "/24", "dev", devA},
		{"ip", "-n", nsR, "addr", "add", addrRA + "/24", "dev", devRA},
		{"ip", "-n", nsR, "addr", "add", addrRB + "/24", "dev", devRB},
		{"ip", "-n", nsB, "addr", "add", addrB + "/24", "dev", devB},
		inR("net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
			"net.ipv4.conf."+devRA+".rp_filter=0", "net.ipv4.conf."+devRB+".rp_filter=0"),
		{"ip", "-n", nsA, "link", "set", "lo", "up"},
		{"ip", "-n", nsR, "link", "set", "lo", "up"},
		{"ip", "-n", nsB, "link", "set", "lo", "up"},
		{"ip", "-n", nsA, "link", "set", devA, "up"},
		{"ip", "-n", nsR, "link", "set", devRA, "up"},
		{"ip", "-n", nsR, "link", "set", devRB, "up"},
		{"ip", "-n", nsB, "link", "set", devB, "up"},
		{"ip", "-n", nsA, "route", "add", "default", "via", addrRA},
		{"ip", "-n", nsB, "route", "add", "default", "via", addrRB},
	}
}

// qdiscPlan puts a fresh tbf on both of R's egress interfaces. The old
// qdisc is deleted first (that may fail: veth starts with none), so that
// the counters start at zero; "replace" would keep them.
func qdiscPlan(rateMbit float64, burst, limit string) (del, add [][]string) {
	rate := fmt.Sprintf("%dkbit", int64(rateMbit*1000+0.5))
	for _, dev := range []string{devRB, devRA} {
		del = append(del, []string{"tc", "-n", nsR, "qdisc", "del", "dev", dev, "root"})
		add = append(add, []string{"tc", "-n", nsR, "qdisc", "add", "dev", dev, "root", "tbf", "rate", rate, "burst", burst, "limit", limit})
	}
	return del, add
}

// delayPlan routes everything R forwards through tun0, once the delay
// line has created it: packets that arrive from A or B are looked up in
// delayTable, whose only route is tun0; the delay line writes them back,
// the kernel receives them on tun0 and routes them by the main table out
// of the other veth, through tbf. A long txqueue keeps the kernel from
// dropping what the delay line has not read yet.
func delayPlan() [][]string {
	return [][]string{
		{"ip", "-n", nsR, "link", "set", devTun, "txqueuelen", "10000", "up"},
		{"ip", "-n", nsR, "route", "add", "default", "dev", devTun, "table", delayTable},
		{"ip", "-n", nsR, "rule", "add", "iif", devRA, "lookup", delayTable, "pref", "100"},
		{"ip", "-n", nsR, "rule", "add", "iif", devRB, "lookup", delayTable, "pref", "101"},
	}
}

// undelayPlan takes the rules out; the route went with tun0.
func undelayPlan() [][]string {
	return [][]string{
		{"ip", "-n", nsR, "rule", "del", "pref", "100"},
		{"ip", "-n", nsR, "rule", "del", "pref", "101"},
	}
}

// testbedNamespaces picks the testbed's namespaces out of "ip netns list",
// whose lines read "gtb-a (id: 3)" or just "gtb-a".
func testbedNamespaces(list string) []string {
	var names []string
	for line := range strings.Lines(list) {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], nsPrefix) {
			names = append(names, f[0])
		}
	}
	return names
}

// parseTCSize reads a size as tc does (iproute2's get_size): bytes, or
// with a suffix k/kb, m/mb, g/gb (powers of 1024 bytes) or kbit/mbit/gbit
// (the same in bits).
func parseTCSize(s string) (int, error) {
	num := strings.TrimRightFunc(s, func(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' })
	unit := strings.ToLower(s[len(num):])
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("size %q: want a positive number with an optional unit (b, kb, kbit, mb, mbit)", s)
	}
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1 << 10, "kb": 1 << 10, "kbit": 1 << 10 / 8.0,
		"m": 1 << 20, "mb": 1 << 20, "mbit": 1 << 20 / 8.0,
		"g": 1 << 30, "gb": 1 << 30, "gbit": 1 << 30 / 8.0,
	}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("size %q: unknown unit %q (want b, kb, kbit, mb, mbit, gb, gbit)", s, unit)
	}
	if v*mult > 1<<31 {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return int(v * mult), nil
}

// qdiscStats are the counters tc -s prints for one qdisc.
type qdiscStats struct {
	Bytes, Packets, Dropped, Overlimits, Requeues int64
	BacklogBytes, BacklogPackets                  int64
}

func (a qdiscStats) sub(b qdiscStats) qdiscStats {
	return qdiscStats{
		Bytes: a.Bytes - b.Bytes, Packets: a.Packets - b.Packets, Dropped: a.Dropped - b.Dropped,
		Overlimits: a.Overlimits - b.Overlimits, Requeues: a.Requeues - b.Requeues,
		BacklogBytes: a.BacklogBytes, BacklogPackets: a.BacklogPackets,
	}
}

// DropPct is the share of the packets offered to the queue that it
// dropped: tc's "Sent" counts only those that left.
func (a qdiscStats) DropPct() float64 {
	if a.Packets+a.Dropped == 0 {
		return 0
	}
	return 100 * float64(a.Dropped) / float64(a.Packets+a.Dropped)
}

var (
	qdiscSentRE    = regexp.MustCompile(`^\s*Sent (\d+) bytes (\d+) pkt \(dropped (\d+), overlimits (\d+) requeues (\d+)\)`)
	qdiscBacklogRE = regexp.MustCompile(`^\s*backlog ([\d.]+)([KMG]?)b (\d+)p`)
)

// parseQdiscStats reads the counters of the first qdisc of the given kind
// in the output of "tc -s qdisc show dev DEV":
//
//	qdisc tbf 8001: root refcnt 2 rate 20Mbit burst 4Kb lat 26.2ms
//	 Sent 1249 bytes 1 pkt (dropped 0, overlimits 0 requeues 0)
//	 backlog 0b 0p requeues 0
func parseQdiscStats(out, kind string) (qdiscStats, error) {
	var st qdiscStats
	found, sent := false, false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "qdisc ") {
			if found {
				break // the next qdisc
			}
			f := strings.Fields(line)
			found = len(f) > 1 && f[1] == kind
			continue
		}
		if !found {
			continue
		}
		if m := qdiscSentRE.FindStringSubmatch(line); m != nil {
			for i, p := range []*int64{&st.Bytes, &st.Packets, &st.Dropped, &st.Overlimits, &st.Requeues} {
				*p, _ = strconv.ParseInt(m[i+1], 10, 64)
			}
			sent = true
		} else if m := qdiscBacklogRE.FindStringSubmatch(line); m != nil {
			// tc prints sizes that are close to a multiple of 1024 as
			// "4Kb" or "1.5Mb".
			v, _ := strconv.ParseFloat(m[1], 64)
			st.BacklogBytes = int64(v * float64(int64(1)<<map[string]int{"": 0, "K": 10, "M": 20, "G": 30}[m[2]]))
			st.BacklogPackets, _ = strconv.ParseInt(m[3], 10, 64)
		}
	}
	if !found {
		return st, fmt.Errorf("no %s qdisc in %q", kind, out)
	}
	if !sent {
		return st, fmt.Errorf("no counters for the %s qdisc in %q (was tc run with -s?)", kind, out)
	}
	return st, nil
}

// parseSNMPCounter reads one counter of /proc/net/snmp, whose sections
// are pairs of lines: "Udp: InDatagrams NoPorts ..." then "Udp: 12 0 ...".
func parseSNMPCounter(snmp, section, name string) (int64, error) {
	var header []string
	for line := range strings.Lines(snmp) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != section+":" {
			continue
		}
		if header == nil {
			header = f
			continue
		}
		for i, h := range header {
			if h == name && i < len(f) {
				return strconv.ParseInt(f[i], 10, 64)
			}
		}
		break
	}
	return 0, fmt.Errorf("no %s %s in /proc/net/snmp", section, name)
}

// parseSoftnetDropped sums the second column of /proc/net/softnet_stat
// (hexadecimal, one line per CPU): packets dropped because a CPU's input
// backlog (net.core.netdev_max_backlog) was full. A veth delivers into
// this backlog, so a burst from A can be lost here before it reaches tbf.
// The count is machine-wide, not per namespace.
func parseSoftnetDropped(s string) (int64, error) {
	var sum int64
	for line := range strings.Lines(s) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseInt(f[1], 16, 64)
		if err != nil {
			return 0, fmt.Errorf("softnet_stat line %q: %v", strings.TrimSpace(line), err)
		}
		sum += v
	}
	return sum, nil
}

// Bytes a packet costs on the bottleneck. tbf charges each packet its
// length as the qdisc sees it on a veth: the Ethernet header (14 bytes)
// and the IP packet, without preamble, FCS or inter-frame gap, and
// without Ethernet's 60-byte minimum (veth does not pad).
const (
	ethHeader  = 14
	ipv4Header = 20
	udpHeader  = 8
	gtudpHdr   = 5 // the default Format: one type byte and the 4-byte id
	mtu        = 1500
	tcpHdrTS   = 32 // TCP with the timestamp option, as Linux sends it
)

// udpWireBytes is what a UDP datagram of n payload bytes costs tbf,
// fragments included when it does not fit the MTU.
func udpWireBytes(n int) int {
	ipPayload := udpHeader + n
	perFrag := (mtu - ipv4Header) &^ 7 // fragment offsets count 8-byte units
	frags := max(1, (ipPayload+perFrag-1)/perFrag)
	return ipPayload + frags*(ipv4Header+ethHeader)
}

// gtudpCeiling is the most of the link rate a gtudp flow of size-byte
// messages can deliver as payload, in percent: each message costs its
// DATA and, on the same link, the sender's ACK (the RECV goes the other
// way); nothing is lost or re-sent. dataOnly leaves the ACK out.
func gtudpCeiling(size int) (withAck, dataOnly float64) {
	data := udpWireBytes(gtudpHdr + size)
	ack := udpWireBytes(gtudpHdr)
	return 100 * float64(size) / float64(data+ack), 100 * float64(size) / float64(data)
}

// tcpCeiling is the same for a TCP stream: full segments of MSS bytes
// (MTU less IP and TCP with timestamps) each cost MTU plus Ethernet.
func tcpCeiling() float64 {
	mss := mtu - ipv4Header - tcpHdrTS
	return 100 * float64(mss) / float64(mtu+ethHeader)
}

// queueDelay is how long a full tbf queue of limit bytes takes to drain at
// rateMbit.
func queueDelay(limit int, rateMbit float64) time.Duration {
	return time.Duration(float64(limit) * 8 / (rateMbit * 1e6) * float64(time.Second))
}

// serialization is how long n wire bytes take at rateMbit.
func serialization(n int64, rateMbit float64) time.Duration {
	return time.Duration(float64(n) * 8 / (rateMbit * 1e6) * float64(time.Second))
}
