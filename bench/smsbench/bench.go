package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mfad/mfad/config"
	"github.com/mfad/mfad/sim"
)

// Options configure a run.
type Options struct {
	// Users are enrolled in mfad, each with a confirmed phone; the burst
	// sends one message to each of Messages of them.
	Users int
	// Overhead is the number of sends of the overhead measurement (one at a
	// time, then from Clients concurrent clients); 0 skips it.
	Overhead, Clients int
	// Messages is the size of the side-by-side burst; 0 skips it.
	Messages int
	// Delay is the simulated modem's time per send in the side-by-side run.
	Delay time.Duration
	// Modems lists the modem counts of the side-by-side run.
	Modems []int
	// Idle is the number of single messages, sent one at a time to an idle
	// system, whose latency is measured with one modem; 0 skips it.
	Idle int
	// Systems lists the systems to run: "mfad", "smstools3", "gammu".
	Systems []string
	// GammuShared also runs gammu-smsd with two instances on one outbox.
	GammuShared bool
	// GammuCommTimeout is gammu-smsd's CommTimeout in seconds.
	GammuCommTimeout int
	// Dir is the work directory; empty means a new temporary one, removed
	// afterwards.
	Dir string
	// Log receives progress; nil discards it.
	Log io.Writer
}

// DefaultOptions are the documented run.
func DefaultOptions() Options {
	return Options{Users: 200, Overhead: 2000, Clients: 32, Messages: 200, Delay: 500 * time.Millisecond,
		Modems: []int{1, 2}, Idle: 8, Systems: []string{"mfad", "smstools3", "gammu"}, GammuShared: true, GammuCommTimeout: 5}
}

// Report is what a run measured.
type Report struct {
	Machine, StoreFS string
	// Fsync is the time of a 4 KiB append and fsync in the work directory.
	Fsync      latencies
	Start, End time.Time
	LoadStart  float64
	LoadEnd    float64
	EnrolTime  time.Duration
	Overhead   *OverheadReport
	Rows       []Row
	Skipped    []string
	Opts       Options
}

// OverheadReport is the zero-latency modem measurement of mfad.
type OverheadReport struct {
	// Sequential sends, one in flight at a time, and the rate they went
	// at (first request to last message at the modem).
	Sends   int
	SeqRate float64
	// From the start of POST /v1/login/{id}/sms to: its answer, the
	// driver's AT+CMGS, and the message body (Ctrl-Z) at the modem.
	Answer, AT, Modem latencies
	// Concurrent sends.
	Clients, Burst  int
	BurstWall       time.Duration // first request to last message at the modem
	BurstSubmitWall time.Duration // first request to last answer
	BurstLatency    latencies     // request to modem, queueing included
	// MaxQueue is the most messages answered but not yet at the modem,
	// sampled every 50 ms.
	MaxQueue int
	CPU      time.Duration // this process (mfad, the simulated modem, the clients)
	Load     float64
}

// Row is one system with a number of modems in the side-by-side run.
type Row struct {
	System    string
	Modems    int
	Messages  int
	Delivered int // distinct messages that reached a modem
	Dups      int // messages that reached a modem more than once
	Lost      int // messages that never reached one
	Failed    int // submissions that failed
	// Wall runs from the first submission to the end of the last send (its
	// message at the modem plus the send delay), comparable to Floor.
	Wall  time.Duration
	Floor time.Duration
	// Accepted runs from the first submission to the last one accepted
	// (answered by the API, or renamed into the spool).
	Accepted time.Duration
	Latency  latencies // request to modem, in the burst
	PerModem []int
	Idle     latencies // request to modem, one message at a time
	PeerCPU  time.Duration
	SelfCPU  time.Duration
	Load     float64
	Note     string
}

// system is one SMS daemon under test.
type system interface {
	Name() string
	// Start starts it on the modems and returns when it is ready to send.
	Start(ctx context.Context, mods []*simModem) error
	// Submit hands message i (to user i's number) to it and returns when
	// it began to: the API request or the spool file write. Preparation a
	// real client does first (mfad: the login) comes before that time.
	Submit(ctx context.Context, i int) (time.Time, error)
	// PollPeriod is how long it may take, when idle, to notice a message.
	PollPeriod() time.Duration
	// Stop stops it and returns the CPU time its own processes used.
	Stop() (time.Duration, error)
}

func userName(i int) string { return fmt.Sprintf("user%03d", i) }

// number is user i's phone, a distinct valid UK mobile number per user.
func number(i int) string { return fmt.Sprintf("+4479111%05d", i) }

func (o *Options) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}
}

func (o *Options) wants(sys string) bool {
	for _, s := range o.Systems {
		if s == sys {
			return true
		}
	}
	return false
}

// Run performs the benchmark.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Users < 1 || o.Messages > o.Users || o.Overhead < 0 || o.Clients < 1 || o.Delay < 0 {
		return nil, errors.New("users must be positive and at least messages; overhead, clients and delay must not be negative")
	}
	for _, s := range o.Systems {
		if s != "mfad" && s != "smstools3" && s != "gammu" {
			return nil, fmt.Errorf("unknown system %q (want mfad, smstools3 or gammu)", s)
		}
	}
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "smsbench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	rep := &Report{Machine: machine(), StoreFS: fsType(dir), Start: time.Now(), LoadStart: loadAvg(), Opts: o}
	var err error
	if rep.Fsync, err = fsyncLatency(dir, 200); err != nil {
		return nil, err
	}

	var systems []system
	var mf *mfadStack
	if o.wants("mfad") {
		if mf, err = newMfad(dir, o.Users); err != nil {
			return nil, err
		}
		defer mf.Close()
		o.logf("enrolling %d users with a phone each", o.Users)
		mods, err := newSimModems(1, 0)
		if err != nil {
			return nil, err
		}
		t := time.Now()
		err = mf.enrol(ctx, mods)
		closeSims(mods)
		if err != nil {
			return nil, err
		}
		rep.EnrolTime = time.Since(t)
		systems = append(systems, mf)
	}
	text := peerTexts(o.Users)
	if o.wants("smstools3") {
		if bin, err := exec.LookPath("smsd"); err != nil {
			rep.Skipped = append(rep.Skipped, "smstools3: smsd not installed (apt-get install smstools)")
		} else {
			systems = append(systems, &smsd{bin: bin, text: text})
		}
	}
	if o.wants("gammu") {
		if bin, err := exec.LookPath("gammu-smsd"); err != nil {
			rep.Skipped = append(rep.Skipped, "gammu: gammu-smsd not installed (apt-get install gammu-smsd)")
		} else {
			systems = append(systems, &gammu{bin: bin, commTimeout: o.GammuCommTimeout, text: text})
			if o.GammuShared {
				systems = append(systems, &gammu{bin: bin, commTimeout: o.GammuCommTimeout, text: text, shared: true})
			}
		}
	}
	for _, s := range rep.Skipped {
		o.logf("skipping %s", s)
	}
	if o.Messages > 0 {
		for _, n := range o.Modems {
			for _, sys := range systems {
				if g, ok := sys.(*gammu); ok && g.shared && n < 2 {
					continue
				}
				row, err := sideBySide(ctx, &o, dir, sys, n)
				if err != nil {
					return nil, fmt.Errorf("%s with %d modems: %w", sys.Name(), n, err)
				}
				rep.Rows = append(rep.Rows, *row)
			}
		}
	}
	// The overhead measurement comes last: its flood of writes leaves the
	// store compacting for a while, which would weigh on what follows.
	if mf != nil && o.Overhead > 0 {
		o.logf("overhead: %d sends one at a time, then %d from %d clients, zero-latency modem", o.Overhead, o.Overhead, o.Clients)
		if rep.Overhead, err = overhead(ctx, mf, o.Overhead, o.Clients); err != nil {
			return nil, fmt.Errorf("overhead: %w", err)
		}
	}
	rep.End, rep.LoadEnd = time.Now(), loadAvg()
	return rep, nil
}

// peerTexts returns the text of message i for the peers: mfad's default
// message with a random code, so that every system sends the same length.
func peerTexts(users int) func(int) string {
	texts := make([]string, users)
	for i := range texts {
		texts[i] = strings.NewReplacer("{{code}}", fmt.Sprintf("%06d", rand.IntN(1_000_000)), "{{issuer}}", "mfad", "{{minutes}}", "10").
			Replace(config.DefaultSMSTemplate)
	}
	return func(i int) string { return texts[i%users] }
}

// sideBySide runs one system on n fresh modems with the realistic delay:
// with one modem first the idle latency, then the burst.
func sideBySide(ctx context.Context, o *Options, dir string, sys system, n int) (*Row, error) {
	o.logf("%s, %d modem(s): starting", sys.Name(), n)
	mods, err := newSimModems(n, o.Delay)
	if err != nil {
		return nil, err
	}
	defer closeSims(mods)
	switch s := sys.(type) {
	case *smsd:
		s.dir = filepath.Join(dir, fmt.Sprint("smstools3-", n))
	case *gammu:
		s.dir = filepath.Join(dir, fmt.Sprint("gammu-", n))
		if s.shared {
			s.dir += "-shared"
		}
	}
	cpu0 := selfCPU()
	if err := sys.Start(ctx, mods); err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			sys.Stop()
		}
	}()
	row := &Row{System: sys.Name(), Modems: n, Messages: o.Messages, Floor: time.Duration(o.Messages) * o.Delay / time.Duration(n)}
	if n == 1 && o.Idle > 0 {
		o.logf("%s: %d single messages to an idle system", sys.Name(), o.Idle)
		lat, err := idleLatency(ctx, sys, mods, o.Idle, o.Messages, o.Delay)
		if err != nil {
			return nil, err
		}
		row.Idle = summarise(lat)
	}
	// Start the burst at a random point of the system's polling cycle.
	if p := sys.PollPeriod(); p > 0 {
		if err := sleep(ctx, rand.N(p)); err != nil {
			return nil, err
		}
	}
	o.logf("%s: burst of %d messages", sys.Name(), o.Messages)
	b, err := burst(ctx, sys, mods, o.Messages, 3*row.Floor+2*time.Minute, 4*o.Delay+2*time.Second)
	if err != nil {
		return nil, err
	}
	row.Delivered, row.Dups, row.Lost, row.Failed, row.Latency, row.PerModem, row.Accepted = b.delivered, b.dups, b.lost, b.failed, b.latency, b.perModem, b.accepted
	if b.wall > 0 {
		// The last message reached the modem at its Ctrl-Z; the modem is
		// done with it (the network took it) o.Delay later.
		row.Wall = b.wall + o.Delay
	}
	row.PeerCPU, _ = sys.Stop()
	stopped = true
	row.SelfCPU = selfCPU() - cpu0
	row.Load = loadAvg()
	o.logf("%s, %d modem(s): wall %s (floor %s), %d delivered, %d duplicates, %d lost", sys.Name(), n, ms(row.Wall), ms(row.Floor), row.Delivered, row.Dups, row.Lost)
	return row, nil
}

type burstResult struct {
	delivered, dups, lost, failed int
	wall                          time.Duration
	accepted                      time.Duration // first submission to the last accepted
	latency                       latencies
	perModem                      []int
}

// burst submits messages 0..n-1 at once, one goroutine each (n users
// logging in within the same instant), and waits until every message
// reached a modem or timeout passed.
func burst(ctx context.Context, sys system, mods []*simModem, n int, timeout, grace time.Duration) (*burstResult, error) {
	base := make([]int, len(mods))
	for j, m := range mods {
		base[j] = len(m.Inbox())
	}
	starts := make([]time.Time, n)
	accepted := make([]time.Time, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			starts[i], errs[i] = sys.Submit(ctx, i)
			accepted[i] = time.Now()
		}()
	}
	close(gate)
	wg.Wait()
	res := &burstResult{perModem: make([]int, len(mods))}
	want := map[string]int{}
	var first, lastAccepted time.Time
	for i, err := range errs {
		if err != nil {
			res.failed++
			continue
		}
		want[number(i)] = i
		if first.IsZero() || starts[i].Before(first) {
			first = starts[i]
		}
		if accepted[i].After(lastAccepted) {
			lastAccepted = accepted[i]
		}
	}
	res.accepted = lastAccepted.Sub(first)
	if res.failed > 0 {
		return nil, fmt.Errorf("%d of %d submissions failed, the first: %v", res.failed, n, errors.Join(errs...))
	}
	arrived := map[string]time.Time{}
	count := func() {
		clear(arrived)
		res.dups = 0
		clear(res.perModem)
		for j, m := range mods {
			for _, s := range m.Inbox()[base[j]:] {
				if _, ok := want[s.To]; !ok {
					continue
				}
				res.perModem[j]++
				if t, seen := arrived[s.To]; seen {
					res.dups++
					if s.Time.Before(t) {
						arrived[s.To] = s.Time
					}
					continue
				}
				arrived[s.To] = s.Time
			}
		}
	}
	deadline := time.Now().Add(timeout)
	for {
		count()
		if len(arrived) == len(want) || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	// Give duplicates still on their way (a message sent twice) time to
	// show.
	if err := sleep(ctx, grace); err != nil {
		return nil, err
	}
	count()
	res.delivered, res.lost = len(arrived), len(want)-len(arrived)
	var lat []time.Duration
	var last time.Time
	for to, t := range arrived {
		lat = append(lat, t.Sub(starts[want[to]]))
		if t.After(last) {
			last = t
		}
	}
	res.latency = summarise(lat)
	if !last.IsZero() {
		res.wall = last.Sub(first)
	}
	return res, nil
}

// idleLatency sends samples messages one at a time, each once the previous
// send is over and after a further random pause of up to the system's
// polling period (so that it lands at a random point of the polling cycle,
// as a real login does), and returns the request-to-modem times.
func idleLatency(ctx context.Context, sys system, mods []*simModem, samples, users int, delay time.Duration) ([]time.Duration, error) {
	var lat []time.Duration
	for k := range samples {
		// Let the previous send finish: the modem is busy for delay after
		// the message reached it, and the system records the outcome.
		pause := 100 * time.Millisecond
		if p := sys.PollPeriod(); p > 0 {
			pause = p
		}
		if err := sleep(ctx, delay+300*time.Millisecond+rand.N(pause)); err != nil {
			return nil, err
		}
		i := k % users
		base := make([]int, len(mods))
		for j, m := range mods {
			base[j] = len(m.Inbox())
		}
		start, err := sys.Submit(ctx, i)
		if err != nil {
			return nil, err
		}
		t, err := waitArrival(ctx, mods, base, number(i), time.Minute)
		if err != nil {
			return nil, fmt.Errorf("single message %d: %w", k, err)
		}
		lat = append(lat, t.Sub(start))
	}
	return lat, nil
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// waitArrival waits for a message to `to` beyond base on any modem and
// returns when it reached the modem.
func waitArrival(ctx context.Context, mods []*simModem, base []int, to string, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		for j, m := range mods {
			for _, s := range m.Inbox()[base[j]:] {
				if s.To == to {
					return s.Time, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("no message within %v", timeout)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// overhead measures mfad with a zero-latency modem: sends one at a time
// (request to answer, to the driver's AT+CMGS, to the message at the
// modem), then sends from concurrent clients (codes per second end to end).
func overhead(ctx context.Context, mf *mfadStack, sends, clients int) (*OverheadReport, error) {
	mods, err := newSimModems(1, 0)
	if err != nil {
		return nil, err
	}
	defer closeSims(mods)
	if err := mf.Start(ctx, mods); err != nil {
		return nil, err
	}
	defer mf.Stop()
	m := mods[0]
	rep := &OverheadReport{Sends: sends, Clients: clients, Burst: sends}
	cpu0 := selfCPU()
	var ans, at, mod []time.Duration
	atOK := true
	seqStart := time.Now()
	for k := range sends {
		i := k % mf.users
		start, answered, err := mf.submit(ctx, i)
		if err != nil {
			return nil, err
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		s, err := m.WaitSMS(wctx, number(i))
		cancel()
		if err != nil {
			return nil, fmt.Errorf("send %d: %w", k, err)
		}
		ans = append(ans, answered.Sub(start))
		mod = append(mod, s.Time.Sub(start))
		// The k-th AT+CMGS the driver wrote carried the k-th message.
		if t, ok := mf.traces[0].at(k); ok && atOK {
			at = append(at, t.Sub(start))
		} else {
			atOK = false
		}
	}
	if in := m.Inbox(); len(in) > 0 {
		rep.SeqRate = float64(sends) / in[len(in)-1].Time.Sub(seqStart).Seconds()
	}
	rep.Answer, rep.Modem = summarise(ans), summarise(mod)
	if atOK && len(m.Inbox()) == sends {
		rep.AT = summarise(at)
	}

	// Concurrent clients, each submitting as fast as it is answered.
	base := len(m.Inbox())
	var next atomic.Int64
	starts := make([]time.Time, sends)
	var mu sync.Mutex
	var lastAnswer time.Time
	var answeredN atomic.Int64
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	// Sample the queue: answered, not yet at the modem.
	sampled := make(chan int)
	stopSampling := make(chan struct{})
	go func() {
		most := 0
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopSampling:
				sampled <- most
				return
			case <-t.C:
				most = max(most, int(answeredN.Load())-(len(m.Inbox())-base))
			}
		}
	}()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := int(next.Add(1) - 1)
				if k >= sends {
					return
				}
				start, answered, err := mf.submit(ctx, k%mf.users)
				if err != nil {
					errs <- err
					return
				}
				starts[k] = start
				answeredN.Add(1)
				mu.Lock()
				if answered.After(lastAnswer) {
					lastAnswer = answered
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		close(stopSampling)
		<-sampled
		return nil, err
	}
	first := starts[0]
	for _, s := range starts {
		if s.Before(first) {
			first = s
		}
	}
	deadline := time.Now().Add(10 * time.Minute)
	for len(m.Inbox()) < base+sends {
		if time.Now().After(deadline) {
			close(stopSampling)
			<-sampled
			return nil, fmt.Errorf("concurrent sends: %d of %d arrived", len(m.Inbox())-base, sends)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stopSampling)
	rep.MaxQueue = <-sampled
	inbox := m.Inbox()[base:]
	var last time.Time
	for _, s := range inbox {
		if s.Time.After(last) {
			last = s.Time
		}
	}
	rep.BurstWall, rep.BurstSubmitWall = last.Sub(first), lastAnswer.Sub(first)
	rep.BurstLatency = matchFIFO(inbox, starts, mf.users)
	rep.CPU = selfCPU() - cpu0
	rep.Load = loadAvg()
	return rep, nil
}

// matchFIFO pairs the concurrent sends with the messages to the same
// number, both in time order (send k went to user k%users; the queue is
// first in, first out), and summarises request-to-modem times.
func matchFIFO(inbox []sim.SMS, starts []time.Time, users int) latencies {
	arrivals := map[string][]time.Time{}
	for _, s := range inbox {
		arrivals[s.To] = append(arrivals[s.To], s.Time)
	}
	sent := map[string][]time.Time{}
	for k, start := range starts {
		sent[number(k%users)] = append(sent[number(k%users)], start)
	}
	var lat []time.Duration
	for to, ss := range sent {
		as := arrivals[to]
		slices.SortFunc(ss, time.Time.Compare)
		slices.SortFunc(as, time.Time.Compare)
		for j := range min(len(ss), len(as)) {
			lat = append(lat, as[j].Sub(ss[j]))
		}
	}
	return summarise(lat)
}
