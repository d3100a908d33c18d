package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"io/fs"
	"math"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// Output of "tc -n gtb-r -s qdisc show dev rb" after a TCP run, as
// iproute2 6.1 prints it.
const tcRB = `qdisc tbf 8052: root refcnt 3 rate 20Mbit burst 4Kb lat 24.6ms 
 Sent 5003536 bytes 3326 pkt (dropped 6, overlimits 6042 requeues 0) 
 backlog 40878b 15p requeues 0
`

// All of R's qdiscs ("tc -s qdisc show"), the tbf not first.
const tcAll = `qdisc noqueue 0: dev lo root refcnt 2 
 Sent 0 bytes 0 pkt (dropped 0, overlimits 0 requeues 0) 
 backlog 0b 0p requeues 0
qdisc tbf 8053: dev ra root refcnt 3 rate 20Mbit burst 4Kb lat 24.6ms 
 Sent 107320 bytes 1608 pkt (dropped 3, overlimits 0 requeues 1) 
 backlog 4Kb 3p requeues 0
qdisc tbf 8052: dev rb root refcnt 3 rate 20Mbit burst 4Kb lat 24.6ms 
 Sent 5012620 bytes 3332 pkt (dropped 6, overlimits 6048 requeues 0) 
 backlog 31794b 12p requeues 0
`

func TestParseQdiscStats(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		want      qdiscStats
	}{
		{"one", tcRB, qdiscStats{Bytes: 5003536, Packets: 3326, Dropped: 6, Overlimits: 6042, BacklogBytes: 40878, BacklogPackets: 15}},
		{"first tbf of several", tcAll, qdiscStats{Bytes: 107320, Packets: 1608, Dropped: 3, Requeues: 1, BacklogBytes: 4096, BacklogPackets: 3}},
	} {
		got, err := parseQdiscStats(tc.out, "tbf")
		if err != nil || got != tc.want {
			t.Errorf("%s: parseQdiscStats = %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ name, out string }{
		{"no tbf", "qdisc noqueue 0: dev lo root refcnt 2 \n Sent 0 bytes 0 pkt (dropped 0, overlimits 0 requeues 0) \n"},
		{"without -s", "qdisc tbf 8052: root refcnt 3 rate 20Mbit burst 4Kb lat 24.6ms \n"},
		{"counters of another qdisc", "qdisc tbf 1: root\nqdisc noqueue 0: dev lo\n Sent 1 bytes 1 pkt (dropped 0, overlimits 0 requeues 0)\n"},
		{"empty", ""},
	} {
		if got, err := parseQdiscStats(tc.out, "tbf"); err == nil {
			t.Errorf("%s: parseQdiscStats = %+v, want an error", tc.name, got)
		}
	}
}

func TestQdiscStats_DropPct(t *testing.T) {
	after, _ := parseQdiscStats(tcRB, "tbf")
	before := qdiscStats{Bytes: 3, Packets: 326, Dropped: 2}
	d := after.sub(before)
	if d.Packets != 3000 || d.Dropped != 4 || d.Bytes != 5003533 {
		t.Fatalf("sub = %+v", d)
	}
	// 4 dropped of 3,004 offered.
	if got, want := d.DropPct(), 100*4/3004.0; math.Abs(got-want) > 1e-9 {
		t.Errorf("DropPct = %v, want %v", got, want)
	}
	if got := (qdiscStats{}).DropPct(); got != 0 {
		t.Errorf("DropPct of nothing = %v, want 0", got)
	}
}

func TestParseTCSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"64kb", 65536}, {"32kbit", 4096}, {"1500", 1500}, {"1500b", 1500},
		{"1mb", 1 << 20}, {"8mbit", 1 << 20}, {"2k", 2048}, {"1.5kb", 1536}, {"64KB", 65536},
	} {
		if got, err := parseTCSize(tc.in); err != nil || got != tc.want {
			t.Errorf("parseTCSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "kb", "-1kb", "0", "64kib", "64 kb", "3gb"} {
		if got, err := parseTCSize(in); err == nil {
			t.Errorf("parseTCSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestCeilings(t *testing.T) {
	// What tbf charges: Ethernet 14 + IP 20 + UDP 8 + gtUDP 5 + payload.
	if got := udpWireBytes(gtudpHdr + 1200); got != 1247 {
		t.Errorf("DATA of 1,200 B costs %d bytes, want 1247", got)
	}
	if got := udpWireBytes(gtudpHdr); got != 47 {
		t.Errorf("ACK costs %d bytes, want 47", got)
	}
	// Past the MTU the datagram is fragmented: 8 + 3,005 bytes in three
	// fragments of at most 1,480, each with its own IP and Ethernet header.
	if got := udpWireBytes(gtudpHdr + 3000); got != 8+3005+3*34 {
		t.Errorf("DATA of 3,000 B costs %d bytes, want %d", got, 8+3005+3*34)
	}
	if got := udpWireBytes(1472); got != 1514 {
		t.Errorf("a full-MTU datagram costs %d bytes, want 1514", got)
	}
	if got := udpWireBytes(1473); got != 1515+34 {
		t.Errorf("one byte past the MTU costs %d bytes, want %d", got, 1515+34)
	}
	for _, tc := range []struct {
		size           int
		withAck, alone float64
	}{
		{1200, 100 * 1200 / 1294.0, 100 * 1200 / 1247.0},
		{64, 100 * 64 / 158.0, 100 * 64 / 111.0},
		{0, 0, 0},
	} {
		w, a := gtudpCeiling(tc.size)
		if math.Abs(w-tc.withAck) > 1e-9 || math.Abs(a-tc.alone) > 1e-9 {
			t.Errorf("gtudpCeiling(%d) = %.3f, %.3f; want %.3f, %.3f", tc.size, w, a, tc.withAck, tc.alone)
		}
	}
	if got, want := tcpCeiling(), 100*1448/1514.0; math.Abs(got-want) > 1e-9 {
		t.Errorf("tcpCeiling = %v, want %v", got, want)
	}
	if got, want := queueDelay(65536, 20), 26214400*time.Nanosecond; got != want {
		t.Errorf("queueDelay(64 KiB, 20 Mbit/s) = %v, want %v", got, want)
	}
	// 1,024 messages of 1,200 B and their ACKs at 5 Mbit/s.
	if got, want := burstIdeal(1024, 1200, 5), time.Duration(1024*1294*8*200)*time.Nanosecond; got != want {
		t.Errorf("burstIdeal = %v, want %v", got, want)
	}
}

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want stat
		text string
	}{
		{[]float64{3, 1, 2}, stat{Median: 2, Min: 1, Max: 3, N: 3}, "2.0 (1.0–3.0)"},
		{[]float64{4, 1, 3, 2}, stat{Median: 2.5, Min: 1, Max: 4, N: 4}, "2.5 (1.0–4.0)"},
		{[]float64{7}, stat{Median: 7, Min: 7, Max: 7, N: 1}, "7.0"},
		{[]float64{5, 5, 5}, stat{Median: 5, Min: 5, Max: 5, N: 3}, "5.0"},
	} {
		in := slices.Clone(tc.xs)
		got := summarize(tc.xs)
		if got != tc.want {
			t.Errorf("summarize(%v) = %+v, want %+v", in, got, tc.want)
		}
		if !slices.Equal(tc.xs, in) {
			t.Errorf("summarize reordered its argument: %v", tc.xs)
		}
		if s := got.format(1); s != tc.text {
			t.Errorf("summarize(%v).format(1) = %q, want %q", in, s, tc.text)
		}
	}
	if got := summarize(nil); got.N != 0 || !math.IsNaN(got.Median) || got.format(1) != "–" {
		t.Errorf("summarize(nil) = %+v (%q), want no median", got, got.format(1))
	}
}

// fakeRun is a run of s in which each flow delivered the given bytes per
// 100 ms for the scenario's duration.
func fakeRun(s scenario, run int, perBin ...int64) runResult {
	r := runResult{Scenario: s.Name, Run: run}
	r.Path.AtoB = qdiscStats{Packets: 900, Dropped: 100}
	r.Path.Bound = 50 * time.Millisecond
	for i, f := range s.Flows {
		bins := make([]int64, s.Duration/testbedBin+5) // the tail after the run does not count
		for j := range bins {
			bins[j] = perBin[i]
		}
		fr := flowResult{Flow: f, Receiver: receiverReport{Kind: f.Kind, Bins: bins}}
		fr.Sender.Kind = f.Kind
		if f.Kind == flowGtudp {
			fr.Sender.Stats = &endpointCounts{PacketsOut: 300}
			fr.Receiver.Stats = &endpointCounts{PacketsOut: 100, Delivered: 100}
			fr.Sender.RTT = latency{N: 100, P50: int64(10 * time.Millisecond), P99: int64(40+run) * int64(time.Millisecond)}
			fr.Sender.Failed = int64(run)
			fr.Sender.AttemptsHist = []int64{0, 3, 1}
		}
		r.Flows = append(r.Flows, fr)
	}
	return r
}

func TestRunResult_Compute(t *testing.T) {
	s := scenario{Name: "pair", RateMbit: 20, Duration: 2 * time.Second, Flows: []flowSpec{{Kind: flowGtudp, Size: 1200}, {Kind: flowTCP}}}
	// 20 Mbit/s is 250,000 bytes per 100 ms.
	r := fakeRun(s, 1, 150000, 50000)
	r.compute(s)
	g, tcp := r.Flows[0], r.Flows[1]
	if math.Abs(g.GoodputPct-60) > 1e-9 || math.Abs(tcp.GoodputPct-20) > 1e-9 {
		t.Errorf("goodput %v%% and %v%%, want 60 and 20", g.GoodputPct, tcp.GoodputPct)
	}
	if math.Abs(g.SharePct-75) > 1e-9 || math.Abs(tcp.SharePct-25) > 1e-9 {
		t.Errorf("shares %v%% and %v%%, want 75 and 25", g.SharePct, tcp.SharePct)
	}
	if g.WirePerMsg != 4 || tcp.WirePerMsg != 0 {
		t.Errorf("datagrams per message %v and %v, want 4 and none", g.WirePerMsg, tcp.WirePerMsg)
	}
	if want, _ := gtudpCeiling(1200); g.CeilingPct != want || tcp.CeilingPct != tcpCeiling() {
		t.Errorf("ceilings %v and %v", g.CeilingPct, tcp.CeilingPct)
	}

	b := scenario{Name: "burst", RateMbit: 5, Burst: 1000, Flows: []flowSpec{{Kind: flowGtudp, Size: 1250}}}
	br := fakeRun(b, 1, 0)
	br.Flows[0].Sender.LastReceiptNS = int64(4 * time.Second) // 10 Mbit in 4 s: half of 5 Mbit/s
	br.compute(b)
	if got := br.Flows[0].GoodputPct; math.Abs(got-50) > 1e-9 {
		t.Errorf("burst goodput %v%%, want 50", got)
	}
	if got := br.Flows[0].SharePct; got != 0 {
		t.Errorf("burst share %v, want none", got)
	}
}

func TestSummarizeRuns_Table(t *testing.T) {
	one := scenario{Name: "one", RateMbit: 20, Duration: time.Second, Flows: []flowSpec{{Kind: flowGtudp, Size: 1200}}}
	pair := scenario{Name: "pair", RateMbit: 20, Duration: time.Second, Flows: []flowSpec{{Kind: flowGtudp, Size: 1200}, {Kind: flowTCP}}}
	var runs []runResult
	for i, per := range []int64{100000, 200000, 125000} { // 40%, 80%, 50% of the link
		r := fakeRun(one, i+1, per)
		r.compute(one)
		runs = append(runs, r)
	}
	p := fakeRun(pair, 1, 150000, 50000)
	p.Flows[1].Sender.CC = "bbr"
	p.compute(pair)
	broken := runResult{Scenario: "pair", Run: 2, Err: "the path is broken"}
	runs = append(runs, p, broken)

	rows := summarizeRuns([]scenario{one, pair}, runs, tableColumns, true)
	if len(rows) != 3 {
		t.Fatalf("%d rows, want one per flow: 3", len(rows))
	}
	if got := rows[0].Cells["goodput"]; got.Median != 50 || got.Min != 40 || got.Max != 80 || got.N != 3 {
		t.Errorf("goodput of three runs: %+v, want median 50 of 40..80", got)
	}
	if got := rows[0].Cells["failed"]; got.Median != 2 {
		t.Errorf("failed: %+v, want the median 2", got)
	}
	if _, ok := rows[0].Cells["share"]; ok {
		t.Errorf("a single flow has a share: %+v", rows[0].Cells["share"])
	}
	if _, ok := rows[2].Cells["rtt_p99"]; ok {
		t.Errorf("the TCP flow has a gtudp RTT")
	}
	if got := rows[2].Cells["share"]; got.Median != 25 || got.N != 1 {
		t.Errorf("TCP share %+v, want 25 from the one good run", got)
	}
	if !slices.ContainsFunc(rows[2].Notes, func(n string) bool { return strings.Contains(n, "run 2 failed: the path is broken") }) ||
		!slices.ContainsFunc(rows[2].Notes, func(n string) bool { return strings.Contains(n, `"bbr", not cubic`) }) {
		t.Errorf("notes %q: want the failed run and the wrong congestion control", rows[2].Notes)
	}

	var out bytes.Buffer
	writeMarkdown(&out, rows, tableColumns)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2+3 {
		t.Fatalf("table of %d lines, want a header, a rule and 3 rows:\n%s", len(lines), out.String())
	}
	cols := strings.Count(lines[0], "|")
	for i, l := range lines {
		if strings.Count(l, "|")-strings.Count(l, `\|`) != cols {
			t.Errorf("line %d has a different number of cells:\n%s", i, l)
		}
	}
	if !strings.Contains(lines[2], "| one | 20 Mbit/s | gtudp 1,200 B | 50.0 (40.0–80.0) | 92.7 |") {
		t.Errorf("first row %q: want the median goodput with its range and the ceiling", lines[2])
	}
	if !strings.Contains(lines[4], "| TCP cubic | 20.0 | 95.6 | – |") {
		t.Errorf("TCP row %q: want goodput, ceiling, then no datagrams per message", lines[4])
	}
}

func TestSenderReport_Attempts(t *testing.T) {
	r := senderReport{AttemptsHist: []int64{0, 6, 3, 0, 1}}
	if mean, most := r.attempts(); math.Abs(mean-1.6) > 1e-9 || most != 4 {
		t.Errorf("attempts = %v, %v; want 1.6, 4", mean, most)
	}
	if mean, most := (senderReport{}).attempts(); mean != 0 || most != 0 {
		t.Errorf("attempts of nothing = %v, %v", mean, most)
	}
}

func TestReceiverReport_BytesIn(t *testing.T) {
	r := receiverReport{Bins: []int64{1, 2, 4, 8}}
	for _, tc := range []struct {
		d    time.Duration
		want int64
	}{{0, 0}, {250 * time.Millisecond, 3}, {400 * time.Millisecond, 15}, {time.Hour, 15}} {
		if got := r.bytesIn(tc.d); got != tc.want {
			t.Errorf("bytesIn(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
}

// Every command the testbed runs on the path names one of its own
// namespaces, and every address in it is in 10.77.0.0/16: the root
// namespace and other addresses are never touched.
func TestPlans_StayInTheirNamespaces(t *testing.T) {
	del, add := qdiscPlan(20, "32kbit", "64kb")
	var plan [][]string
	for _, p := range [][][]string{setupPlan("/x/gtudp"), del, add, delayPlan(), undelayPlan()} {
		plan = append(plan, p...)
	}
	own := netip.MustParsePrefix("10.77.0.0/16")
	ours := func(ns string) bool { return strings.HasPrefix(ns, nsPrefix) && len(ns) > len(nsPrefix) }
	for _, argv := range plan {
		cmd := strings.Join(argv, " ")
		switch {
		case len(argv) > 3 && (argv[0] == "ip" || argv[0] == "tc") && argv[1] == "-n":
			if !ours(argv[2]) {
				t.Errorf("%s: namespace %q is not the testbed's", cmd, argv[2])
			}
		case len(argv) > 3 && argv[0] == "ip" && argv[1] == "netns" && slices.Contains([]string{"add", "del", "exec"}, argv[2]):
			if !ours(argv[3]) {
				t.Errorf("%s: namespace %q is not the testbed's", cmd, argv[3])
			}
		default:
			t.Errorf("%s: runs outside the testbed's namespaces", cmd)
		}
		for _, a := range argv {
			if p, err := netip.ParsePrefix(a); err == nil && !own.Contains(p.Addr()) {
				t.Errorf("%s: address %v is outside %v", cmd, p, own)
			}
			if ad, err := netip.ParseAddr(a); err == nil && !own.Contains(ad) {
				t.Errorf("%s: address %v is outside %v", cmd, ad, own)
			}
		}
	}
	// The veths are created inside the namespaces.
	for _, argv := range setupPlan("/x/gtudp") {
		if slices.Contains(argv, "veth") && (argv[1] != "-n" || !slices.Contains(argv, "netns")) {
			t.Errorf("%s: a veth pair must be made inside the namespaces", strings.Join(argv, " "))
		}
	}
	if want := []string{"tc", "-n", nsR, "qdisc", "add", "dev", devRB, "root", "tbf", "rate", "20000kbit", "burst", "32kbit", "limit", "64kb"}; !slices.Equal(add[0], want) {
		t.Errorf("qdisc %q, want %q", add[0], want)
	}
}

func TestTestbedNamespaces(t *testing.T) {
	list := "gtb-b (id: 5)\nother\ngtb-a\nmy-gtb-x (id: 1)\ngtb-r (id: 4)\n\n"
	if got, want := testbedNamespaces(list), []string{"gtb-b", "gtb-a", "gtb-r"}; !slices.Equal(got, want) {
		t.Errorf("testbedNamespaces = %q, want %q", got, want)
	}
}

func TestParseKernelCounters(t *testing.T) {
	snmp := "Ip: Forwarding DefaultTTL\nIp: 1 64\n" +
		"Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\n" +
		"Udp: 32 0 0 32 17 0 0 0 0\n" +
		"UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\n" +
		"UdpLite: 0 0 0 0 99 0 0 0 0\n"
	if got, err := parseSNMPCounter(snmp, "Udp", "RcvbufErrors"); err != nil || got != 17 {
		t.Errorf("Udp RcvbufErrors = %d, %v; want 17", got, err)
	}
	if got, err := parseSNMPCounter(snmp, "Udp", "NoSuch"); err == nil {
		t.Errorf("a missing counter = %d, want an error", got)
	}
	softnet := "009414ff 0000000a 00000000\n00983530 00000010 00000000\n"
	if got, err := parseSoftnetDropped(softnet); err != nil || got != 10+16 {
		t.Errorf("softnet dropped = %d, %v; want 26", got, err)
	}
	if _, err := parseSoftnetDropped("0 zz 0\n"); err == nil {
		t.Error("softnet garbage parsed")
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 64: "64", 1200: "1,200", 1024: "1,024", 16777216: "16,777,216", -1234567: "-1,234,567", 100000: "100,000"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

type fakeFileInfo struct{ fs.FileInfo }

// fakeSystem is a machine fit for the testbed, to be spoiled one way per
// test.
func fakeSystem() system {
	return system{
		goos: "linux",
		euid: 0,
		lookPath: func(f string) (string, error) {
			return "/usr/sbin/" + f, nil
		},
		stat: func(string) (fs.FileInfo, error) { return fakeFileInfo{}, nil },
	}
}

func TestSystem_Check(t *testing.T) {
	if err := fakeSystem().check(true); err != nil {
		t.Fatalf("a fit system: %v", err)
	}
	noTC := fakeSystem()
	noTC.lookPath = func(f string) (string, error) {
		if f == "tc" {
			return "", errors.New("not found")
		}
		return "/usr/sbin/" + f, nil
	}
	noTUN := fakeSystem()
	noTUN.stat = func(string) (fs.FileInfo, error) { return nil, os.ErrNotExist }
	darwin, user := fakeSystem(), fakeSystem()
	darwin.goos, user.euid = "darwin", 1000
	for _, tc := range []struct {
		name    string
		sys     system
		needTUN bool
		want    string // in the error; "" for none
	}{
		{"darwin", darwin, false, "needs Linux"},
		{"not root", user, false, "needs root"},
		{"no tc", noTC, false, `"tc" (iproute2) is not in PATH`},
		{"no TUN, delay wanted", noTUN, true, "/dev/net/tun"},
		{"no TUN, no delay", noTUN, false, ""},
	} {
		err := tc.sys.check(tc.needTUN)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want none", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
}

// The command refuses before it touches anything when the machine is not
// fit; the check sees whether a delay scenario is selected.
func TestRunTestbed_Refuses(t *testing.T) {
	user := fakeSystem()
	user.euid = 1000
	noTUN := fakeSystem()
	noTUN.stat = func(string) (fs.FileInfo, error) { return nil, os.ErrNotExist }
	for _, tc := range []struct {
		args []string
		sys  system
		want string
	}{
		{nil, user, "needs root"},
		{[]string{"-scenario", "rtt40-20"}, noTUN, "/dev/net/tun"},
		{[]string{"-scenario", "gtudp-20", "-rtt", "10ms"}, noTUN, "/dev/net/tun"},
	} {
		var out, errOut bytes.Buffer
		err := runTestbedWith(context.Background(), tc.args, tc.sys, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("testbed %q: %v, want a refusal saying %q", tc.args, err, tc.want)
		}
		if code := exitCode(err, io.Discard); code != 1 {
			t.Errorf("testbed %q: exit status %d, want 1", tc.args, code)
		}
		if out.Len() > 0 {
			t.Errorf("testbed %q printed %q before refusing", tc.args, out.String())
		}
	}
}

func TestTestbedFlags_Invalid(t *testing.T) {
	for _, args := range [][]string{
		{"-runs", "0"},
		{"-size", "16777217"},
		{"-size", "-1"},
		{"-rate", "0"},
		{"-rate", "NaN"},
		{"-rtt", "-1ms"},
		{"-duration", "10ms"},
		{"-window", "-1"},
		{"-burst", "0"},
		{"-drain", "0s"},
		{"-tbf-limit", "lots"},
		{"-tbf-burst", "32kibit"},
		{"-scenario", "gtudp-20,nonesuch"},
		{"-json", "extra"},
	} {
		err := runTestbedWith(context.Background(), args, fakeSystem(), io.Discard, io.Discard)
		if code := exitCode(err, io.Discard); code != 2 {
			t.Errorf("testbed %q: exit status %d (%v), want 2", args, code, err)
		}
	}
	var errOut bytes.Buffer
	if err := runTestbedWith(context.Background(), []string{"-h"}, fakeSystem(), io.Discard, &errOut); !errors.Is(err, flag.ErrHelp) || !strings.Contains(errOut.String(), "Example:") {
		t.Errorf("testbed -h: %v, usage %q; want help with an example", err, errOut.String())
	}
}

func TestTestbedFlags_Options(t *testing.T) {
	options := func(args ...string) testbedOptions {
		t.Helper()
		var f testbedFlags
		fs := flag.NewFlagSet("testbed", flag.ContinueOnError)
		f.register(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		set := map[string]bool{}
		fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
		o, err := f.options(set)
		if err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		return o
	}
	o := options()
	if got := scenarioNames(o.scenarios); got != scenarioNames(defaultScenarios()) {
		t.Errorf("default scenarios %s, want all", got)
	}
	if o.runs != 1 || o.limit != 65536 || o.tbfBurst != "32kbit" || o.tbfLimit != "64kb" {
		t.Errorf("defaults: %+v", o)
	}
	byName := map[string]scenario{}
	for _, s := range o.scenarios {
		byName[s.Name] = s
	}
	if s := byName["vs-tcp-20"]; s.Duration != 20*time.Second || s.RateMbit != 20 || len(s.Flows) != 2 {
		t.Errorf("vs-tcp-20: %+v", s)
	}
	if s := byName["burst-5"]; s.Burst != 1024 || s.RateMbit != 5 || s.Flows[0].Size != 1200 {
		t.Errorf("burst-5: %+v", s)
	}
	if s := byName["rtt40-20"]; s.RTT != 40*time.Millisecond {
		t.Errorf("rtt40-20: %+v", s)
	}

	o = options("-scenario", "vs-tcp-20, burst-5,vs-tcp-20", "-size", "16777216", "-rate", "2.5", "-rtt", "10ms",
		"-duration", "3s", "-window", "64", "-burst", "10", "-runs", "3", "-tbf-limit", "128kb")
	if got := scenarioNames(o.scenarios); got != "vs-tcp-20, burst-5" {
		t.Fatalf("-scenario picked %s", got)
	}
	pair, burst := o.scenarios[0], o.scenarios[1]
	if pair.Flows[0].Size != 16<<20 || pair.Flows[1].Kind != flowTCP || pair.Flows[1].Size != 0 {
		t.Errorf("-size reached %+v, want the gtudp flow only", pair.Flows)
	}
	if pair.RateMbit != 2.5 || pair.RTT != 10*time.Millisecond || pair.Duration != 3*time.Second || pair.Window != 64 {
		t.Errorf("overrides: %+v", pair)
	}
	if burst.Burst != 10 || burst.Duration != 0 {
		t.Errorf("burst: %+v, want 10 messages and no duration", burst)
	}
	if o.runs != 3 || o.limit != 128<<10 {
		t.Errorf("runs %d, limit %d", o.runs, o.limit)
	}
	if defaultScenarios()[6].Flows[0].Size != 1200 {
		t.Error("-size changed the default scenarios themselves")
	}
}

func TestRun_TestbedList(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"testbed", "-list"}, strings.NewReader(""), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, s := range defaultScenarios() {
		if !strings.Contains(out.String(), s.Name+" ") {
			t.Errorf("-list does not show %s:\n%s", s.Name, out.String())
		}
	}
	if !strings.Contains(out.String(), "burst of 1,024 × 1,200 B at once") {
		t.Errorf("-list:\n%s", out.String())
	}
}
