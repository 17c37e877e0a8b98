package pam

// BenchmarkPAMModules compares the cost of one authentication through PAM
// for pam_mfad, pam_google_authenticator and pam_oath, each with 1,000
// users and replay protection on, driven the same way: bench/pambench.c
// runs pam_start, pam_authenticate and pam_end per user in one process,
// answering the prompt with that user's current TOTP code. Each user
// authenticates once per round (a code works once), so every round of a
// module starts in a later 30-second step than its previous round ended.
//
// It writes PAM service files to /etc/pam.d (removed afterwards), so it runs
// only as root and with MFAD_PAM_BENCH=1; it needs the Debian packages
// libpam-google-authenticator, libpam-oath and libssl-dev:
//
//	sudo MFAD_PAM_BENCH=1 go test -run '^$' -bench PAMModules -benchtime 3x ./pam/
//
// Each module runs with one pambench process authenticating the users back
// to back, and with two processes sharing them (logins arriving at once).
// pam_permit, which accepts everyone, measures PAM itself. Metrics:
// auths/s, ok/s (successful authentications only), and mean-µs, p50-µs and
// p99-µs per authentication (pam_start to pam_end), each the median over
// the rounds, and failed, the most right codes refused
// in a round (pam_oath refuses some when two logins overlap: it gives up on
// its users file's lock); a table at the end gives each module's
// throughput relative to pam_mfad. A round takes up to 30 s of waiting for
// a fresh time step, and -benchtime 3x runs four rounds per case (the
// testing package's first probe round included): about 12 minutes.

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfad/mfad/client"
	"github.com/mfad/mfad/otp"
)

const benchUsers = 1000

// benchModule is one PAM module under test.
type benchModule struct {
	name    string
	service string // the PAM service using it
	// oneTime: codes work once, so rounds need fresh time steps.
	oneTime bool
	// lastStep is the TOTP step of the module's last authentication.
	lastStep int64
}

// benchStats describes one round: every user authenticated once.
type benchStats struct {
	n, failed           int
	okRate              float64 // set by medianStats
	wall                time.Duration
	mean, p50, p90, p99 time.Duration
}

func (s benchStats) perSecond() float64 { return float64(s.n) / s.wall.Seconds() }

// okPerSecond counts only the authentications that succeeded: a module
// that refuses right codes finishes those attempts early. For medians it
// is the median of the rounds' rates.
func (s benchStats) okPerSecond() float64 {
	if s.okRate > 0 {
		return s.okRate
	}
	return float64(s.n-s.failed) / s.wall.Seconds()
}

func requireFile(tb testing.TB, path, pkg string) {
	tb.Helper()
	if _, err := os.Stat(path); err != nil {
		tb.Fatalf("%s missing (apt-get install %s)", path, pkg)
	}
}

func BenchmarkPAMModules(b *testing.B) {
	if os.Getenv("MFAD_PAM_BENCH") != "1" {
		b.Skip("set MFAD_PAM_BENCH=1 (and run as root) to compare the PAM modules")
	}
	requireRoot(b)
	secdir, err := exec.Command("pkg-config", "--variable=libdir", "pam").Output()
	if err != nil {
		b.Fatalf("pkg-config pam: %v", err)
	}
	modDir := filepath.Join(strings.TrimSpace(string(secdir)), "security")
	requireFile(b, filepath.Join(modDir, "pam_google_authenticator.so"), "libpam-google-authenticator")
	requireFile(b, filepath.Join(modDir, "pam_oath.so"), "libpam-oath")
	requireFile(b, "/usr/include/openssl/hmac.h", "libssl-dev")
	pambench := makeTarget(b, "pambench", "pambench")
	dir, err := os.MkdirTemp(workDir, "bench")
	if err != nil {
		b.Fatal(err)
	}

	// mfad: the real daemon with the users enrolled over its socket, with
	// the default skew (one step either side), as the others below.
	d := newDaemon(b, "")
	d.skew = 1
	d.writeConfig("")
	d.start()
	users, secrets := enrollBenchUsers(b, d.socket)

	// google-authenticator: one secrets file per user, read and rewritten
	// as root; DISALLOW_REUSE records used codes, WINDOW_SIZE 3 is one step
	// either side.
	gaDir := filepath.Join(dir, "google-authenticator")
	if err := os.Mkdir(gaDir, 0o700); err != nil {
		b.Fatal(err)
	}
	for i, u := range users {
		body := secrets[i] + "\n\" WINDOW_SIZE 3\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n"
		if err := os.WriteFile(filepath.Join(gaDir, u), []byte(body), 0o600); err != nil {
			b.Fatal(err)
		}
	}

	// pam_oath: one users file, in which it records each user's last
	// code and refuses it again; window=1 is one step either side.
	var oath strings.Builder
	for i, u := range users {
		s, err := otp.ParseBase32(secrets[i])
		if err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(&oath, "HOTP/T30 %s - %s\n", u, hex.EncodeToString(s))
	}
	oathFile := filepath.Join(dir, "users.oath")
	if err := os.WriteFile(oathFile, []byte(oath.String()), 0o600); err != nil {
		b.Fatal(err)
	}

	// pambench's users files: all users, and the users split in two for
	// two processes.
	userFiles := map[int][]string{}
	for _, procs := range []int{1, 2} {
		for p := range procs {
			var uf strings.Builder
			for i := p; i < len(users); i += procs {
				fmt.Fprintf(&uf, "%s %s\n", users[i], secrets[i])
			}
			f := filepath.Join(dir, fmt.Sprintf("users-%d-of-%d", p+1, procs))
			if err := os.WriteFile(f, []byte(uf.String()), 0o600); err != nil {
				b.Fatal(err)
			}
			userFiles[procs] = append(userFiles[procs], f)
		}
	}

	modules := []*benchModule{
		// PAM itself: pam_start, a module that says yes, pam_end.
		{name: "pam_permit", service: pamService(b, "bench-permit", "auth required pam_permit.so")},
		{name: "pam_mfad", oneTime: true,
			service: pamService(b, "bench-mfad", "auth required @MODULE@ socket="+d.socket)},
		{name: "pam_google_authenticator", oneTime: true,
			service: pamService(b, "bench-ga", "auth required pam_google_authenticator.so secret="+gaDir+"/${USER} user=root")},
		{name: "pam_oath", oneTime: true,
			service: pamService(b, "bench-oath", "auth required pam_oath.so usersfile="+oathFile+" window=1 digits=6")},
	}
	// The enrolment used the current step's codes.
	for _, m := range modules {
		m.lastStep = step(time.Now())
	}

	summary := map[string]benchStats{}
	for _, m := range modules {
		for _, procs := range []int{1, 2} {
			name := fmt.Sprintf("%s/procs=%d", m.name, procs)
			b.Run(name, func(b *testing.B) {
				var rounds []benchStats
				b.StopTimer()
				for range b.N {
					if m.oneTime {
						waitStepAfter(m.lastStep)
					}
					b.StartTimer()
					rounds = append(rounds, runPambench(b, pambench, m, userFiles[procs], dir))
					b.StopTimer()
				}
				med := medianStats(rounds)
				summary[name] = med
				b.ReportMetric(0, "ns/op")
				b.ReportMetric(med.perSecond(), "auths/s")
				b.ReportMetric(med.okPerSecond(), "ok/s")
				b.ReportMetric(float64(med.mean.Microseconds()), "mean-µs")
				b.ReportMetric(float64(med.p50.Microseconds()), "p50-µs")
				b.ReportMetric(float64(med.p99.Microseconds()), "p99-µs")
				b.ReportMetric(float64(med.failed), "failed")
			})
		}
	}

	var out strings.Builder
	fmt.Fprintf(&out, "\n%d users; each authenticates once per round; medians over rounds; failed: most in a round\n", benchUsers)
	fmt.Fprintf(&out, "%-38s %9s %9s %9s %9s %9s %9s %7s\n", "module", "auths/s", "vs mfad", "ok/s", "mean µs", "p50 µs", "p99 µs", "failed")
	for _, procs := range []int{1, 2} {
		base, ok := summary[fmt.Sprintf("pam_mfad/procs=%d", procs)]
		if !ok {
			continue
		}
		for _, m := range modules {
			r, ok := summary[fmt.Sprintf("%s/procs=%d", m.name, procs)]
			if !ok {
				continue
			}
			fmt.Fprintf(&out, "%-38s %9.0f %8.2fx %9.0f %9d %9d %9d %7d\n", fmt.Sprintf("%s, %d process(es)", m.name, procs),
				r.perSecond(), r.perSecond()/base.perSecond(), r.okPerSecond(), r.mean.Microseconds(), r.p50.Microseconds(), r.p99.Microseconds(), r.failed)
		}
	}
	fmt.Print(out.String())
}

// step is the TOTP time step of t.
func step(t time.Time) int64 { return t.Unix() / 30 }

// waitStepAfter sleeps until the TOTP step after last has begun: every
// code of the previous round was used and is refused as a replay within
// its step.
func waitStepAfter(last int64) {
	next := time.Unix((last+1)*30, 0)
	if d := time.Until(next); d > 0 {
		time.Sleep(d)
	}
}

// runPambench runs one pambench process per users file at once and merges
// their measurements.
func runPambench(b *testing.B, bin string, m *benchModule, userFiles []string, dir string) benchStats {
	b.Helper()
	type run struct {
		cmd            *exec.Cmd
		lat            string
		stdout, stderr strings.Builder
	}
	runs := make([]*run, len(userFiles))
	start := time.Now()
	for i, uf := range userFiles {
		r := &run{lat: filepath.Join(dir, fmt.Sprintf("latencies-%d", i))}
		r.cmd = exec.Command(bin, "-r", "192.0.2.7", "-l", r.lat, m.service, uf)
		r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
		if err := r.cmd.Start(); err != nil {
			b.Fatal(err)
		}
		runs[i] = r
	}
	var lat []time.Duration
	failed := 0
	for _, r := range runs {
		// pambench exits 1 when an authentication failed; it still
		// measured them all.
		err := r.cmd.Wait()
		var res struct {
			OK   int `json:"ok"`
			Fail int `json:"fail"`
		}
		if jerr := json.Unmarshal([]byte(r.stdout.String()), &res); jerr != nil || (err != nil && res.Fail == 0) {
			b.Fatalf("pambench %s: %v %v\n%s%s", m.name, err, jerr, r.stdout.String(), r.stderr.String())
		}
		if res.Fail > 0 {
			b.Logf("pambench %s: %d authentications failed, for example:\n%s", m.name, res.Fail, r.stderr.String())
		}
		failed += res.Fail
	}
	wall := time.Since(start)
	m.lastStep = step(time.Now())
	for _, r := range runs {
		data, err := os.ReadFile(r.lat)
		if err != nil {
			b.Fatal(err)
		}
		for _, f := range strings.Fields(string(data)) {
			us, err := strconv.ParseFloat(f, 64)
			if err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Duration(us*float64(time.Microsecond)))
		}
	}
	if len(lat) != benchUsers {
		b.Fatalf("pambench %s: %d measurements for %d users", m.name, len(lat), benchUsers)
	}
	slices.Sort(lat)
	var sum time.Duration
	for _, l := range lat {
		sum += l
	}
	pct := func(p float64) time.Duration { return lat[int(float64(len(lat)-1)*p)] }
	return benchStats{n: len(lat), failed: failed, wall: wall, mean: sum / time.Duration(len(lat)), p50: pct(0.5), p90: pct(0.9), p99: pct(0.99)}
}

// medianStats takes each measure's median over the rounds.
func medianStats(rs []benchStats) benchStats {
	med := func(f func(benchStats) time.Duration) time.Duration {
		v := make([]time.Duration, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	failed := 0
	ok := make([]float64, len(rs))
	for i, r := range rs {
		failed = max(failed, r.failed)
		ok[i] = r.okPerSecond()
	}
	slices.Sort(ok)
	return benchStats{
		n:      rs[0].n,
		failed: failed,
		okRate: ok[len(ok)/2],
		wall:   med(func(r benchStats) time.Duration { return r.wall }),
		mean:   med(func(r benchStats) time.Duration { return r.mean }),
		p50:    med(func(r benchStats) time.Duration { return r.p50 }),
		p90:    med(func(r benchStats) time.Duration { return r.p90 }),
		p99:    med(func(r benchStats) time.Duration { return r.p99 }),
	}
}

// enrollBenchUsers enrolls benchUsers users over the socket, eight at a
// time, and returns their names and base32 secrets.
func enrollBenchUsers(b *testing.B, socket string) (users, secrets []string) {
	b.Helper()
	cl := client.New(socket)
	defer cl.Close()
	users = make([]string, benchUsers)
	secrets = make([]string, benchUsers)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, benchUsers)
	sem := make(chan struct{}, 8)
	for i := range benchUsers {
		users[i] = fmt.Sprintf("bench%04d", i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			e, err := cl.EnrollTOTP(ctx, users[i], "")
			if err != nil {
				errs <- fmt.Errorf("enrolling %s: %w", users[i], err)
				return
			}
			s, err := otp.ParseBase32(e.Secret)
			if err != nil {
				errs <- err
				return
			}
			p := otp.DefaultParams()
			code := otp.Code(s, otp.Counter(time.Now(), p), p)
			if _, err := cl.ConfirmTOTP(ctx, users[i], e.FactorID, code); err != nil {
				errs <- fmt.Errorf("confirming %s: %w", users[i], err)
				return
			}
			secrets[i] = e.Secret
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return users, secrets
}
