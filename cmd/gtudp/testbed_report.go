package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// What the children report (one JSON value each on stdout) and what the
// parent makes of it.

// endpointCounts are the fields of gtudp's Stats the testbed reads.
type endpointCounts struct {
	PacketsOut, PacketsIn, DataResent      uint64
	Sent, Confirmed, Failed                uint64
	Delivered, Duplicates, ReceiptsDropped uint64
	// Where else datagrams are lost or not answered: RECV re-sent,
	// packets the socket reader dropped because their peer was behind,
	// DATA not answered for lack of room, writes the socket refused.
	RecvResent, MailboxFull, Withheld, WriteErrors uint64
}

// pathView is what a gtudp sender's PeerStats say of its path.
type pathView struct {
	Lost, Spurious, Timeouts, ExtFallbacks uint64
	Cwnd, InFlight                         []int
	SRTT                                   []time.Duration
}

// latency summarises a histogram of round-trip times, in nanoseconds.
type latency struct {
	N                   int64
	P50, P99, Max, Mean int64
}

// senderReport is what a sender in A measured.
type senderReport struct {
	Kind flowKind
	// Refused is the library's error when it refused the message size
	// (ErrTooLarge); nothing else was sent.
	Refused string `json:",omitempty"`
	// Sent counts messages handed to the Outbox; Succeeded and Failed
	// (ErrUndelivered) their receipts; Other receipts with another error,
	// the first of which is FirstErr.
	Sent, Succeeded, Failed, Other int64
	FirstErr                       string `json:",omitempty"`
	// Outstanding counts messages still without a receipt when the drain
	// bound ran out.
	Outstanding int64
	RTT         latency
	// AttemptsHist[n] counts successful messages that took n DATA
	// transmissions.
	AttemptsHist []int64 `json:",omitempty"`
	// HandedNS is how long handing the burst to the Outbox took;
	// LastReceiptNS runs from t0 to the last receipt.
	HandedNS, LastReceiptNS int64
	Stats                   *endpointCounts `json:",omitempty"`
	// Path is the sender's view of the path to its receiver: loss
	// detection's counts at the end, and the congestion window, bytes in
	// flight and smoothed RTT sampled every testbedBin from t0 (-json
	// only: the table does not show them).
	Path *pathView `json:",omitempty"`
	// TCP: bytes written, the congestion control the socket ran, and its
	// retransmitted segments.
	Bytes   int64  `json:",omitempty"`
	CC      string `json:",omitempty"`
	Retrans int64  `json:",omitempty"`
}

// attempts returns the mean and largest DATA transmissions of the
// successful messages.
func (r senderReport) attempts() (mean float64, most int) {
	var n, sum int64
	for a, c := range r.AttemptsHist {
		n += c
		sum += int64(a) * c
		if c > 0 {
			most = a
		}
	}
	if n == 0 {
		return 0, 0
	}
	return float64(sum) / float64(n), most
}

// receiverReport is what a receiver in B counted.
type receiverReport struct {
	Kind flowKind
	// Bins hold payload bytes delivered per testbedBin, the first from
	// t0, and MsgBins the messages (gtudp); Early counts bytes before t0
	// (the sender's size probe).
	Bins     []int64
	MsgBins  []int64 `json:",omitempty"`
	Early    int64
	Messages int64
	Bytes    int64
	// DupDelivered counts messages whose sequence number had been
	// delivered before: gtudp promises none.
	DupDelivered int64
	Stats        *endpointCounts `json:",omitempty"`
}

// testbedBin is the receivers' time resolution.
const testbedBin = 100 * time.Millisecond

// bytesIn sums the bins covering [0, d).
func (r receiverReport) bytesIn(d time.Duration) int64 {
	var sum int64
	for _, b := range r.Bins[:min(len(r.Bins), int(d/testbedBin))] {
		sum += b
	}
	return sum
}

// pingReport is the base round-trip time measured from A to B's echo.
type pingReport struct {
	RTTs        []int64
	Lost        int
	Min, Median int64
}

// delayReport is what the delay line did.
type delayReport struct {
	Packets  int64
	MaxQueue int
	// LateP99 and LateMax say how far behind their due time packets were
	// written back, in nanoseconds: the delay line's own error.
	LateP99, LateMax int64
	// TxDropped is tun0's tx_dropped: packets the kernel dropped because
	// the delay line had not read them yet. WriteErrors counts packets
	// the device refused back.
	TxDropped, WriteErrors int64
	// NotRealtime says why the delay line's threads run at ordinary
	// priority, if they do: its timing then suffers from the machine's
	// load.
	NotRealtime string `json:",omitempty"`
}

// runResult is one run of one scenario.
type runResult struct {
	Scenario string
	Run      int
	Started  time.Time
	Path     pathResult
	Flows    []flowResult
	Err      string `json:",omitempty"`
}

// pathResult is what the path did during a run.
type pathResult struct {
	RateMbit float64
	// AddedRTT was asked for; PlainRTT is the median base RTT measured
	// without the delay line (once per session), BaseRTT with it, for
	// this run.
	AddedRTT, PlainRTT, BaseRTT time.Duration
	// QueueDelay is how long a full queue takes to drain; Bound is
	// 2 × (BaseRTT + QueueDelay), beside which p99 is printed.
	QueueDelay, Bound time.Duration
	// AtoB is tbf on R's interface toward B (the data direction), BtoA
	// on the one toward A.
	AtoB, BtoA qdiscStats
	// BacklogDrops counts packets the kernel dropped at a CPU's input
	// backlog during the run (machine-wide); RcvbufErrorsB counts UDP
	// datagrams dropped at a full socket buffer in B, RcvbufErrorsA in A.
	BacklogDrops                 int64
	RcvbufErrorsA, RcvbufErrorsB int64
	Delay                        *delayReport `json:",omitempty"`
}

// flowResult is one flow of a run, with the figures the table shows.
type flowResult struct {
	Flow     flowSpec
	Sender   senderReport
	Receiver receiverReport
	// GoodputPct is payload delivered during the run as a percentage of
	// the link rate; for a burst, the burst's payload over the time until
	// its last receipt. CeilingPct is the most it can be.
	GoodputPct, CeilingPct float64
	// SharePct is the flow's part of all flows' payload in the run.
	SharePct float64
	// WirePerMsg is datagrams both endpoints sent per delivered message.
	WirePerMsg float64
}

// compute fills in the figures of every flow from the reports.
func (r *runResult) compute(s scenario) {
	var total int64
	for i := range r.Flows {
		total += r.Flows[i].Receiver.bytesIn(s.Duration)
	}
	for i := range r.Flows {
		f := &r.Flows[i]
		rcv, snd := f.Receiver, f.Sender
		switch f.Flow.Kind {
		case flowTCP:
			f.CeilingPct = tcpCeiling()
		default:
			f.CeilingPct, _ = gtudpCeiling(f.Flow.Size)
			if snd.Stats != nil && rcv.Stats != nil && rcv.Stats.Delivered > 0 {
				f.WirePerMsg = float64(snd.Stats.PacketsOut+rcv.Stats.PacketsOut) / float64(rcv.Stats.Delivered)
			}
		}
		if s.Burst > 0 {
			if snd.LastReceiptNS > 0 && snd.Refused == "" {
				bits := float64(int64(s.Burst)*int64(f.Flow.Size)) * 8
				f.GoodputPct = 100 * bits / (float64(snd.LastReceiptNS) / 1e9) / (s.RateMbit * 1e6)
			}
			continue
		}
		in := rcv.bytesIn(s.Duration)
		f.GoodputPct = 100 * float64(in) * 8 / s.Duration.Seconds() / (s.RateMbit * 1e6)
		if total > 0 {
			f.SharePct = 100 * float64(in) / float64(total)
		}
	}
}

// burstIdeal is how long n messages of size bytes take through the link
// with nothing lost: each DATA and its ACK once.
func burstIdeal(n, size int, rateMbit float64) time.Duration {
	data, ack := udpWireBytes(gtudpHdr+size), udpWireBytes(gtudpHdr)
	return serialization(int64(n)*int64(data+ack), rateMbit)
}

// stat is a median with the spread of the runs it came from.
type stat struct {
	Median, Min, Max float64
	N                int
}

// summarize returns the median and spread of xs (NaN for none). The
// median of an even count is the mean of the middle two.
func summarize(xs []float64) stat {
	if len(xs) == 0 {
		return stat{Median: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stat{Median: m, Min: s[0], Max: s[len(s)-1], N: len(s)}
}

// format writes the median with the given precision and, when the runs
// differ, their range in parentheses.
func (s stat) format(prec int) string {
	if s.N == 0 {
		return "–"
	}
	m := fmt.Sprintf("%.*f", prec, s.Median)
	if s.N > 1 {
		lo, hi := fmt.Sprintf("%.*f", prec, s.Min), fmt.Sprintf("%.*f", prec, s.Max)
		if lo != hi {
			m += fmt.Sprintf(" (%s–%s)", lo, hi)
		}
	}
	return m
}

// column is one numeric column of the table: value returns false where it
// does not apply to the flow.
type column struct {
	Key, Head string
	Prec      int
	value     func(s scenario, r *runResult, f *flowResult) (float64, bool)
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func gtudpOnly(f *flowResult) bool { return f.Flow.Kind == flowGtudp && f.Sender.Refused == "" }

var tableColumns = []column{
	{"goodput", "goodput % of link", 1, func(s scenario, r *runResult, f *flowResult) (float64, bool) {
		return f.GoodputPct, f.Sender.Refused == ""
	}},
	{"ceiling", "ceiling %", 1, func(s scenario, r *runResult, f *flowResult) (float64, bool) {
		return f.CeilingPct, true
	}},
	{"wire_per_msg", "datagrams/msg", 2, func(s scenario, r *runResult, f *flowResult) (float64, bool) {
		return f.WirePerMsg, gtudpOnly(f) && f.WirePerMsg > 0
	}},
	{"drops_ab", "drops A→B %", 1, func(s scenario, r *runResult, f *flowResult) (float64, bool) {
		return r.Path.AtoB.DropPct(), true
	}},
	{"drops_ba", "drops B→A %", 1, func(s scenario, r *runResult, f *flowResult) (float64, bool) {
		return r.Path.BtoA.DropPct(), true
	}},
	{"failed", "failed", 0, func(s scenario, r *runResult, f *flowResult) (float64, bool) {
		return float64(f.Sender.Failed + f.Sender.Other + f.Sender.Outstanding), gtudpOnly(f)
	}},
	{"rtt_p50", "RTT p50 ms", 1, func(s scenario, r *runResult, f *flowResult) (float64, bool) {
		return ms(time.Duration(f.Sender.RTT.P50)), gtudpOnly(f) && f.Sender.RTT.N > 0
	}},
	{"rtt_p99", "RTT p99 ms", 1, func(s scenario, r *runResult, f *flowResult) (float64, bool) {
		return ms(time.Duration(f.Sender.RTT.P99)), gtudpOnly(f) && f.Sender.RTT.N > 0
	}},
	{"bound", "2×(RTT₀+queue) ms", 1, func(s scenario, r *runResult, f *flowResult) (float64, bool) {
		return ms(r.Path.Bound), gtudpOnly(f)
	}},
	{"share", "share %", 1, func(s scenario, r *runResult, f *flowResult) (float64, bool) {
		return f.SharePct, len(r.Flows) > 1 && s.Burst == 0
	}},
	{"burst_s", "burst: all receipts s", 2, func(s scenario, r *runResult, f *flowResult) (float64, bool) {
		return float64(f.Sender.LastReceiptNS) / 1e9, s.Burst > 0 && gtudpOnly(f)
	}},
	{"data_per_msg", "DATA/msg", 2, func(s scenario, r *runResult, f *flowResult) (float64, bool) {
		m, _ := f.Sender.attempts()
		return m, gtudpOnly(f) && m > 0
	}},
}

// pathColumns are the second table: what the path itself measured.
var pathColumns = []column{
	{"rtt0", "base RTT ms", 2, func(s scenario, r *runResult, f *flowResult) (float64, bool) {
		return ms(r.Path.BaseRTT), r.Path.BaseRTT > 0
	}},
	{"added_rtt", "added RTT measured ms", 2, func(s scenario, r *runResult, f *flowResult) (float64, bool) {
		return ms(r.Path.BaseRTT - r.Path.PlainRTT), r.Path.AddedRTT > 0
	}},
	{"queue", "full queue ms", 1, func(s scenario, r *runResult, f *flowResult) (float64, bool) {
		return ms(r.Path.QueueDelay), true
	}},
	{"sent_ab", "pkts A→B", 0, func(s scenario, r *runResult, f *flowResult) (float64, bool) {
		return float64(r.Path.AtoB.Packets), true
	}},
	{"dropped_ab", "dropped A→B", 0, func(s scenario, r *runResult, f *flowResult) (float64, bool) {
		return float64(r.Path.AtoB.Dropped), true
	}},
	{"backlog_drops", "backlog drops", 0, func(s scenario, r *runResult, f *flowResult) (float64, bool) {
		return float64(r.Path.BacklogDrops), true
	}},
	{"rcvbuf_a", "rcvbuf drops A", 0, func(s scenario, r *runResult, f *flowResult) (float64, bool) {
		return float64(r.Path.RcvbufErrorsA), true
	}},
	{"rcvbuf_b", "rcvbuf drops B", 0, func(s scenario, r *runResult, f *flowResult) (float64, bool) {
		return float64(r.Path.RcvbufErrorsB), true
	}},
	{"late_p99", "delay line late p99 µs", 0, func(s scenario, r *runResult, f *flowResult) (float64, bool) {
		if r.Path.Delay == nil {
			return 0, false
		}
		return float64(r.Path.Delay.LateP99) / 1e3, true
	}},
}

// summaryRow is one line of the table: a flow of a scenario over its runs.
type summaryRow struct {
	Scenario string
	Path     string
	Flow     string
	Cells    map[string]stat
	Notes    []string `json:",omitempty"`
}

// summarizeRuns turns the runs of each scenario into table rows: one per
// flow (or, with cols == pathColumns, one per scenario).
func summarizeRuns(scenarios []scenario, runs []runResult, cols []column, perFlow bool) []summaryRow {
	var rows []summaryRow
	for _, s := range scenarios {
		var mine []*runResult
		for i := range runs {
			if runs[i].Scenario == s.Name {
				mine = append(mine, &runs[i])
			}
		}
		nflows := len(s.Flows)
		if !perFlow {
			nflows = 1
		}
		for fi := range nflows {
			row := summaryRow{Scenario: s.Name, Path: s.path(), Flow: s.Flows[fi].String(), Cells: map[string]stat{}}
			if s.Burst > 0 {
				row.Flow = flowsTitle(s)
			}
			if !perFlow {
				row.Flow = flowsTitle(s)
			}
			for _, c := range cols {
				var xs []float64
				for _, r := range mine {
					if r.Err != "" || fi >= len(r.Flows) {
						continue
					}
					if v, ok := c.value(s, r, &r.Flows[fi]); ok {
						xs = append(xs, v)
					}
				}
				if len(xs) > 0 {
					row.Cells[c.Key] = summarize(xs)
				}
			}
			row.Notes = rowNotes(s, mine, fi, perFlow)
			rows = append(rows, row)
		}
	}
	return rows
}

// rowNotes says what the numbers cannot: refusals, failed runs,
// duplicates, and the burst's ideal time.
func rowNotes(s scenario, runs []*runResult, fi int, perFlow bool) []string {
	var notes []string
	add := func(n string) {
		if !slices.Contains(notes, n) {
			notes = append(notes, n)
		}
	}
	for _, r := range runs {
		if r.Err != "" {
			add(fmt.Sprintf("run %d failed: %s", r.Run, r.Err))
			continue
		}
		if d := r.Path.Delay; !perFlow && d != nil {
			if d.NotRealtime != "" {
				add(d.NotRealtime)
			}
			if d.TxDropped > 0 || d.WriteErrors > 0 {
				add(fmt.Sprintf("run %d: the kernel dropped %d packets at tun0, %d writes failed", r.Run, d.TxDropped, d.WriteErrors))
			}
		}
		if !perFlow || fi >= len(r.Flows) {
			continue
		}
		f := r.Flows[fi]
		if f.Sender.Refused != "" {
			add("refused: " + f.Sender.Refused)
		}
		if f.Receiver.DupDelivered > 0 {
			add(fmt.Sprintf("DUPLICATES DELIVERED: %d", f.Receiver.DupDelivered))
		}
		if f.Sender.Outstanding > 0 {
			add(fmt.Sprintf("%d receipts not in after -drain (counted as failed)", f.Sender.Outstanding))
		}
		if f.Sender.FirstErr != "" {
			add("other failures: " + f.Sender.FirstErr)
		}
		if f.Flow.Kind == flowTCP && f.Sender.CC != "cubic" {
			add(fmt.Sprintf("congestion control was %q, not cubic", f.Sender.CC))
		}
	}
	if perFlow && s.Burst > 0 && s.Flows[fi].Kind == flowGtudp {
		var most []float64
		for _, r := range runs {
			if r.Err == "" && fi < len(r.Flows) {
				_, m := r.Flows[fi].Sender.attempts()
				most = append(most, float64(m))
			}
		}
		add(fmt.Sprintf("ideal %.2f s; most DATA for one message %s",
			burstIdeal(s.Burst, s.Flows[fi].Size, s.RateMbit).Seconds(), summarize(most).format(0)))
	}
	if perFlow && s.Flows[fi].Kind == flowTCP {
		var re []float64
		for _, r := range runs {
			if r.Err == "" && fi < len(r.Flows) {
				re = append(re, float64(r.Flows[fi].Sender.Retrans))
			}
		}
		add(fmt.Sprintf("TCP retransmitted segments %s", summarize(re).format(0)))
	}
	return notes
}

// writeMarkdown prints rows as a markdown table with the given columns;
// cells that do not apply show "–".
func writeMarkdown(w io.Writer, rows []summaryRow, cols []column) {
	heads := []string{"scenario", "path", "flow"}
	for _, c := range cols {
		heads = append(heads, c.Head)
	}
	heads = append(heads, "notes")
	fmt.Fprintf(w, "| %s |\n", strings.Join(heads, " | "))
	fmt.Fprintf(w, "|%s\n", strings.Repeat("---|", len(heads)))
	for _, r := range rows {
		cells := []string{r.Scenario, r.Path, r.Flow}
		for _, c := range cols {
			st, ok := r.Cells[c.Key]
			if !ok {
				cells = append(cells, "–")
				continue
			}
			cells = append(cells, st.format(c.Prec))
		}
		cells = append(cells, strings.Join(r.Notes, "; "))
		for i, c := range cells {
			cells[i] = strings.ReplaceAll(c, "|", `\|`)
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
}

// testbedRun is everything one "gtudp testbed" measured: -json prints it
// whole, the table its summary.
type testbedRun struct {
	Command            string
	Started            time.Time
	Took               time.Duration
	LoadStart, LoadEnd string
	TBF                string
	PlainRTT           time.Duration
	Runs               []runResult
	Table, PathTable   []summaryRow
}

// writeText prints the tables and what is needed to read them.
func (t testbedRun) writeText(w io.Writer) {
	fmt.Fprintf(w, "## gtudp testbed, %s\n\n", t.Started.Format("2006-01-02 15:04"))
	fmt.Fprintf(w, "`%s`: took %v; load average %s at the start, %s at the end.\n\n", t.Command, t.Took, t.LoadStart, t.LoadEnd)
	fmt.Fprintf(w, "Path: A --veth-- R --veth-- B, tbf (rate as listed, %s) on both of R's egress interfaces; "+
		"base RTT without the delay line %.2f ms. Medians of the runs, their range in parentheses.\n\n", t.TBF, ms(t.PlainRTT))
	writeMarkdown(w, t.Table, tableColumns)
	fmt.Fprintln(w)
	writeMarkdown(w, t.PathTable, pathColumns)
	fmt.Fprintln(w, `
goodput: payload delivered during the run over the link rate (a burst: its payload over the time to its last receipt).
ceiling: payload over what tbf charges per message, the Ethernet header and the IP packet (14 + 20 + 8 + 5 bytes of
headers for the DATA, and the sender's 47-byte ACK, which shares the link); TCP: 1448-byte segments in 1514 bytes.
datagrams/msg: PacketsOut of both endpoints per message delivered (3 without loss). drops: tbf's dropped over
dropped + sent. failed: ErrUndelivered receipts, other errors, and receipts not in after -drain.
RTT: Receipt.RTT of the delivered messages; 2×(RTT₀+queue) is twice the base RTT plus a full queue's drain time.`)
}
