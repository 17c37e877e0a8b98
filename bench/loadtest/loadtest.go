package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mfad/mfad/api/wire"
	"github.com/mfad/mfad/client"
	"github.com/mfad/mfad/config"
	"github.com/mfad/mfad/internal/daemon"
	"github.com/mfad/mfad/otp"
	"github.com/mfad/mfad/service"
	"github.com/mfad/mfad/store"
)

// Options configure a run.
type Options struct {
	Users, Clients int
	Duration       time.Duration
	Crash          bool
	Binary, Dir    string
	FailRatio      float64
	// Client is "raw" (a lean HTTP/1.1 writer) or "nethttp" (package client).
	Client string
	// IdleWait is how long the daemon idles after READY before its idle
	// RSS is read.
	IdleWait time.Duration
	Log      io.Writer
}

// Report is what a run measured.
type Report struct {
	Machine        string
	Users, Clients int
	ClientKind     string
	PopulateTime   time.Duration
	Ready          time.Duration
	IdleRSSKB      int64
	IdleMinRSSKB   int64
	LoadRSSKB      int64
	IdleWait       time.Duration
	// CPU time the daemon and this load generator used during the load.
	DaemonCPU, ClientCPU time.Duration
	Verifications        int64
	OK, Fail, Other      int64
	Elapsed              time.Duration
	P50, P90, P99, Max   time.Duration
	// Crash test.
	Crashed       bool
	AckedOK       int
	AckedFail     int
	CrashProblems int
	CrashNotes    []string
}

// Print writes the report.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "machine: %s\n", r.Machine)
	fmt.Fprintf(w, "users: %d (populated in %s), clients: %d (%s)\n", r.Users, r.PopulateTime.Round(time.Millisecond), r.Clients, r.ClientKind)
	fmt.Fprintf(w, "READY=1 after exec: %s\n", r.Ready.Round(time.Millisecond))
	fmt.Fprintf(w, "idle RSS %s after READY: %.1f MB (lowest while idle %.1f MB); peak RSS under load: %.1f MB\n",
		r.IdleWait, float64(r.IdleRSSKB)/1024, float64(r.IdleMinRSSKB)/1024, float64(r.LoadRSSKB)/1024)
	fmt.Fprintf(w, "verifications: %d in %s = %.0f/s (ok %d, fail %d, other %d)\n", r.Verifications, r.Elapsed.Round(time.Millisecond),
		float64(r.Verifications)/r.Elapsed.Seconds(), r.OK, r.Fail, r.Other)
	fmt.Fprintf(w, "latency: p50 %s  p90 %s  p99 %s  max %s\n", r.P50, r.P90, r.P99, r.Max)
	if r.Verifications > 0 && r.DaemonCPU > 0 {
		fmt.Fprintf(w, "cpu per verification: daemon %s, load generator %s (daemon %.2f cores, generator %.2f cores)\n",
			r.DaemonCPU/time.Duration(r.Verifications), r.ClientCPU/time.Duration(r.Verifications),
			r.DaemonCPU.Seconds()/r.Elapsed.Seconds(), r.ClientCPU.Seconds()/r.Elapsed.Seconds())
	}
	if r.Crashed {
		fmt.Fprintf(w, "crash test: SIGKILL under load; %d acknowledged ok and %d acknowledged failures checked after restart: %d problems\n",
			r.AckedOK, r.AckedFail, r.CrashProblems)
		for _, n := range r.CrashNotes {
			fmt.Fprintf(w, "  %s\n", n)
		}
	}
}

func (o *Options) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format+"\n", args...)
	}
}

var params = otp.Params{Digits: 6, Period: 30 * time.Second, Algorithm: otp.SHA1}

// Run performs the benchmark.
func Run(o Options) (*Report, error) {
	if o.Users < 1 || o.Clients < 1 || o.Duration <= 0 {
		return nil, errors.New("users, clients and duration must be positive")
	}
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "mfad-load-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	bin := o.Binary
	if bin == "" {
		bin = filepath.Join(dir, "mfad")
		o.logf("building mfad")
		if out, err := exec.Command("go", "build", "-o", bin, "github.com/mfad/mfad/cmd/mfad").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("building mfad: %v\n%s", err, out)
		}
	}
	socket := filepath.Join(dir, "mfad.sock")
	cfgPath := filepath.Join(dir, "config.hcl")
	// A lockout cannot interfere with the throughput measurement: wrong codes
	// (-fail-ratio) go to users that are never verified with a right code.
	cfgText := fmt.Sprintf("server {\n  socket = %q\n}\nstorage {\n  dir = %q\n}\nlockout {\n  max_failures = 100\n  source_max_failures = 1000000\n  source_window = \"1m\"\n}\nlog {\n  level = \"warn\"\n}\n",
		socket, filepath.Join(dir, "state"))
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		return nil, err
	}
	cfg, _, diags := config.LoadFile(cfgPath, config.EnvFromOS())
	if diags.HasErrors() {
		return nil, diags
	}
	rep := &Report{Machine: machine(), Users: o.Users, Clients: o.Clients, ClientKind: o.Client}

	o.logf("enrolling %d users", o.Users)
	t0 := time.Now()
	secrets, err := populate(cfg, o.Users, o.Clients)
	if err != nil {
		return nil, fmt.Errorf("enrolling users: %w", err)
	}
	rep.PopulateTime = time.Since(t0)

	d, err := startDaemon(bin, cfgPath, socket, dir)
	if err != nil {
		return nil, err
	}
	defer d.kill()
	rep.Ready = d.ready
	// Idle RSS, after start-up work (compacting what enrolment wrote) has
	// settled: the Go runtime returns freed heap to the OS only after a GC,
	// which an idle process gets from the runtime's forced GC every two
	// minutes.
	rep.IdleWait = o.IdleWait
	for end := time.Now().Add(o.IdleWait); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		r := rss(d.cmd.Process.Pid)
		if rep.IdleMinRSSKB == 0 || r < rep.IdleMinRSSKB {
			rep.IdleMinRSSKB = r
		}
	}
	rep.IdleRSSKB = rss(d.cmd.Process.Pid)

	o.logf("verifying for %s with %d clients", o.Duration, o.Clients)
	acks := &ackLog{}
	stopAt := time.Now().Add(o.Duration)
	var killAt time.Time
	if o.Crash {
		killAt = time.Now().Add(o.Duration / 2)
	}
	daemonCPU0, clientCPU0 := procCPU(d.cmd.Process.Pid), selfCPU()
	lat, counts, elapsed := load(socket, secrets, o, stopAt, killAt, d, acks)
	rep.DaemonCPU, rep.ClientCPU = procCPU(d.cmd.Process.Pid)-daemonCPU0, selfCPU()-clientCPU0
	if rep.DaemonCPU < 0 { // killed (-crash): its counters are gone
		rep.DaemonCPU = 0
	}
	rep.LoadRSSKB = d.peakRSS
	rep.Elapsed = elapsed
	rep.OK, rep.Fail, rep.Other = counts[0], counts[1], counts[2]
	rep.Verifications = int64(len(lat))
	slices.Sort(lat)
	if n := len(lat); n > 0 {
		rep.P50, rep.P90, rep.P99, rep.Max = lat[n*50/100], lat[n*90/100], lat[n*99/100], lat[n-1]
	}
	if !o.Crash {
		d.stop()
		return rep, nil
	}

	// The daemon was killed mid-load. Restart and check every acknowledged
	// decision.
	rep.Crashed = true
	<-d.done // SIGKILL is delivered asynchronously
	d2, err := startDaemon(bin, cfgPath, socket, dir)
	if err != nil {
		return nil, fmt.Errorf("restarting after SIGKILL: %w", err)
	}
	defer d2.kill()
	checkAcks(socket, acks, rep)
	d2.stop()
	return rep, nil
}

// populate enrolls users in-process through the service (the same code the
// daemon runs), so large benchmarks do not spend minutes enrolling over the
// socket. It returns each user's secret.
func populate(cfg *config.Config, n, workers int) ([]otp.Secret, error) {
	keyPath, create := daemon.KeyPath(cfg, "")
	master, _, err := store.LoadOrCreateKey(keyPath, create, nil)
	if err != nil {
		return nil, err
	}
	db, err := store.Open(store.Options{Dir: daemon.DBDir(cfg), MasterKey: master})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	svc, err := service.New(db, store.DeriveKey(master, "mfad recovery-code hmac v1"), service.SettingsFrom(cfg), nil)
	if err != nil {
		return nil, err
	}
	secrets := make([]otp.Secret, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	ctx := context.Background()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				user := userName(i)
				e, err := svc.EnrollTOTP(ctx, service.Internal, user, "")
				if err != nil {
					errs <- err
					return
				}
				// Confirm with the previous step so steps now and now+1 stay
				// usable; retry when a step boundary passed in between.
				var err2 error
				for range 3 {
					code := otp.Code(e.Secret, otp.Counter(time.Now(), params)-1, params)
					if _, err2 = svc.ConfirmTOTP(ctx, service.Internal, user, e.FactorID, code); err2 == nil {
						break
					}
				}
				if err2 != nil {
					errs <- fmt.Errorf("confirming %s: %w", user, err2)
					return
				}
				secrets[i] = e.Secret
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	return secrets, nil
}

func userName(i int) string { return "user" + strconv.Itoa(i) }

type daemonProc struct {
	cmd     *exec.Cmd
	ready   time.Duration
	peakRSS int64
	done    chan struct{}
	mu      sync.Mutex
	stderr  strings.Builder // guarded by mu
}

func (d *daemonProc) log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stderr.String()
}

// startDaemon runs `mfad serve` with NOTIFY_SOCKET pointing at a datagram
// socket of ours and measures the time from exec to READY=1, as systemd
// would see it.
func startDaemon(bin, cfgPath, socket, dir string) (*daemonProc, error) {
	notify := filepath.Join(dir, "notify.sock")
	os.Remove(notify)
	nc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	defer os.Remove(notify)
	cmd := exec.Command(bin, "serve", "--config", cfgPath)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notify)
	d := &daemonProc{cmd: cmd, done: make(chan struct{})}
	stderr, _ := cmd.StderrPipe()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			d.mu.Lock()
			if d.stderr.Len() < 1<<16 {
				d.stderr.WriteString(s.Text() + "\n")
			}
			d.mu.Unlock()
		}
		_ = cmd.Wait()
		close(d.done)
	}()
	buf := make([]byte, 4096)
	deadline := time.Now().Add(60 * time.Second)
	for {
		_ = nc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		n, err := nc.Read(buf)
		if err != nil {
			exited := false
			select {
			case <-d.done:
				exited = true
			default:
			}
			if exited || time.Now().After(deadline) {
				d.kill()
				return nil, fmt.Errorf("no READY=1 from the daemon (exited: %v):\n%s", exited, d.log())
			}
			continue
		}
		if strings.Contains(string(buf[:n]), "READY=1") {
			d.ready = time.Since(start)
			return d, nil
		}
	}
}

func (d *daemonProc) kill() {
	select {
	case <-d.done:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
}

func (d *daemonProc) stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		d.kill()
	}
}

// rss returns the resident set size of pid in KiB.
func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				v, _ := strconv.ParseInt(f[1], 10, 64)
				return v
			}
		}
	}
	return 0
}

// procCPU returns the user+system CPU time of pid (0 when unreadable).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may contain spaces) start at ") ".
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clkTck
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func machine() string {
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				model = strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
				break
			}
		}
	}
	return fmt.Sprintf("%d cores (%s), %s, GOMAXPROCS=%d", runtime.NumCPU(), model, runtime.Version(), runtime.GOMAXPROCS(0))
}

// ack records a decision the daemon answered.
type ack struct {
	user, code string
}

type ackLog struct {
	mu    sync.Mutex
	ok    []ack
	fails map[string]int
}

func (a *ackLog) add(user, code, result string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch result {
	case "ok":
		a.ok = append(a.ok, ack{user, code})
	case "fail", "locked":
		if a.fails == nil {
			a.fails = map[string]int{}
		}
		a.fails[user]++
	}
}

// load runs the verification phase. Request i goes to user i mod N with
// step offset i div N (0 or 1), so every request carries a fresh,
// never-used code and should succeed. With FailRatio, a share of requests
// instead sends a wrong code to a separate group of users.
func load(socket string, secrets []otp.Secret, o Options, stopAt, killAt time.Time, d *daemonProc, acks *ackLog) ([]time.Duration, [3]int64, time.Duration) {
	n := len(secrets)
	failUsers := 0
	if o.FailRatio > 0 {
		failUsers = max(1, n/10)
	}
	okUsers := n - failUsers
	var next, failNext atomic.Int64
	var counts [3]atomic.Int64
	lats := make([][]time.Duration, o.Clients)
	var wg sync.WaitGroup
	start := time.Now()
	stopRSS, rssDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(rssDone)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopRSS:
				return
			case <-t.C:
				if r := rss(d.cmd.Process.Pid); r > d.peakRSS {
					d.peakRSS = r
				}
			}
		}
	}()
	// In crash mode the daemon is killed once half of the fresh codes were
	// sent, or at killAt, whichever comes first: always under load.
	var killOnce sync.Once
	var killed atomic.Bool
	kill := func() {
		killOnce.Do(func() {
			killed.Store(true)
			_ = d.cmd.Process.Signal(syscall.SIGKILL)
		})
	}
	if !killAt.IsZero() {
		go func() {
			time.Sleep(time.Until(killAt))
			kill()
		}()
	}
	for c := range o.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := newVerifier(o.Client, socket)
			defer cl.Close()
			var mine []time.Duration
			for k := 0; time.Now().Before(stopAt); k++ {
				var user, code string
				wrong := failUsers > 0 && float64(k%100) < o.FailRatio*100
				if wrong {
					i := int(failNext.Add(1)-1) % failUsers
					user, code = userName(okUsers+i), "000000"
				} else {
					i := int(next.Add(1) - 1)
					if i >= 2*okUsers {
						break
					}
					u, off := i%okUsers, i/okUsers
					user = userName(u)
					code = otp.Code(secrets[u], otp.Counter(time.Now(), params)+uint64(off), params)
				}
				t := time.Now()
				v, err := cl.Verify(wire.VerifyRequest{User: user, Code: code, Service: "loadtest"})
				if !killAt.IsZero() && next.Load() >= int64(okUsers) {
					kill()
				}
				if err != nil {
					if killed.Load() {
						break // the daemon was killed on purpose
					}
					counts[2].Add(1)
					continue
				}
				mine = append(mine, time.Since(t))
				acks.add(user, code, v.Result)
				switch v.Result {
				case "ok":
					counts[0].Add(1)
				case "fail", "locked":
					counts[1].Add(1)
				default:
					counts[2].Add(1)
				}
			}
			lats[c] = mine
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stopRSS)
	<-rssDone
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	return all, [3]int64{counts[0].Load(), counts[1].Load(), counts[2].Load()}, elapsed
}

// checkAcks verifies, after the restart, that every acknowledged success is
// now a replay and that every acknowledged failure was counted.
func checkAcks(socket string, acks *ackLog, rep *Report) {
	cl := client.New(socket)
	defer cl.Close()
	ctx := context.Background()
	rep.AckedOK = len(acks.ok)
	problem := func(format string, args ...any) {
		rep.CrashProblems++
		if len(rep.CrashNotes) < 10 {
			rep.CrashNotes = append(rep.CrashNotes, fmt.Sprintf(format, args...))
		}
	}
	for _, a := range acks.ok {
		v, err := cl.Verify(ctx, wire.VerifyRequest{User: a.user, Code: a.code, Service: "loadtest-check"})
		if err != nil {
			problem("replaying %s: %v", a.user, err)
			continue
		}
		if v.Result == "ok" {
			problem("acknowledged code of %s accepted again after the crash (lost decision)", a.user)
		}
	}
	for user, n := range acks.fails {
		rep.AckedFail += n
		u, err := cl.User(ctx, user)
		if err != nil {
			problem("reading %s: %v", user, err)
			continue
		}
		// A lockout (max_failures = 100 in the benchmark config) stops the count.
		if want := min(n, 100); u.Failures < want {
			problem("%s: %d acknowledged failures, %d recorded after the crash", user, n, u.Failures)
		}
	}
}
