package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Polling of the peers, as configured.
const (
	// smsdDelaytime is smsd's default delaytime: the seconds its
	// outgoing-file checker and its modem processes sleep when they find
	// nothing to do. The benchmark keeps it, as operators run it.
	smsdDelaytime = 10 * time.Second
)

// daemon is a peer's process (or one of them).
type daemon struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// startDaemon runs argv in its own process group with its output in logPath.
func startDaemon(logPath string, argv ...string) (*daemon, error) {
	out, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("starting %s: %w", argv[0], err)
	}
	d := &daemon{cmd: cmd, done: make(chan struct{})}
	go func() {
		d.err = cmd.Wait()
		out.Close()
		close(d.done)
	}()
	return d, nil
}

// alive fails once the process has exited.
func (d *daemon) alive() error {
	select {
	case <-d.done:
		return fmt.Errorf("%s exited: %v", filepath.Base(d.cmd.Path), d.err)
	default:
		return nil
	}
}

// stop asks the process to terminate (SIGTERM), kills its process group if
// it has not exited after 20 s, and returns the CPU time it and the children
// it waited for used.
func (d *daemon) stop() time.Duration {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.done
	}
	if ru, ok := d.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		return rusageCPU(ru)
	}
	return 0
}

// writeSpool writes data to tmp, then renames it to final: spool readers
// never see a half-written file.
func writeSpool(tmp, final string, data []byte) error {
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, final)
}

// smsd runs smstools3's smsd on the modems, one device section each, with
// the spool layout and settings of the Debian package's documentation.
type smsd struct {
	bin  string
	dir  string
	d    *daemon
	seq  atomic.Int64
	text func(i int) string
}

func (s *smsd) Name() string { return "smstools3 (smsd)" }

func (s *smsd) PollPeriod() time.Duration { return smsdDelaytime }

func (s *smsd) Start(ctx context.Context, mods []*simModem) error {
	for _, sub := range []string{"outgoing", "checked", "failed", "sent", "incoming", "tmp"} {
		if err := os.MkdirAll(filepath.Join(s.dir, sub), 0o755); err != nil {
			return err
		}
	}
	var names []string
	var sections strings.Builder
	for i, m := range mods {
		name := fmt.Sprint("GSM", i+1)
		names = append(names, name)
		fmt.Fprintf(&sections, "[%s]\ndevice = %s\nincoming = no\nrtscts = no\nbaudrate = 115200\n", name, m.Path())
	}
	conf := fmt.Sprintf("devices = %s\noutgoing = %[2]s/outgoing\nchecked = %[2]s/checked\nfailed = %[2]s/failed\nsent = %[2]s/sent\nincoming = %[2]s/incoming\nlogfile = %[2]s/smsd.log\nloglevel = 5\n%s",
		strings.Join(names, ","), s.dir, sections.String())
	confPath := filepath.Join(s.dir, "smsd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return err
	}
	d, err := startDaemon(filepath.Join(s.dir, "smsd.out"), s.bin, "-c", confPath, "-t",
		"-p", filepath.Join(s.dir, "smsd.pid"), "-i", filepath.Join(s.dir, "smsd.working"))
	if err != nil {
		return err
	}
	s.d = d
	if err := waitSettled(ctx, mods, 60*time.Second, d.alive); err != nil {
		s.d.stop()
		s.d = nil
		return fmt.Errorf("smsd: %w (see %s)", err, filepath.Join(s.dir, "smsd.log"))
	}
	return nil
}

// Submit spools message i as smsd's documentation asks: written elsewhere,
// then moved into the outgoing directory.
func (s *smsd) Submit(_ context.Context, i int) (time.Time, error) {
	start := time.Now()
	n := s.seq.Add(1)
	body := fmt.Sprintf("To: %s\n\n%s", strings.TrimPrefix(number(i), "+"), s.text(i))
	err := writeSpool(filepath.Join(s.dir, "tmp", fmt.Sprintf("bench-%06d", n)), filepath.Join(s.dir, "outgoing", fmt.Sprintf("bench-%06d", n)), []byte(body))
	return start, err
}

func (s *smsd) Stop() (time.Duration, error) {
	if s.d == nil {
		return 0, nil
	}
	cpu := s.d.stop()
	s.d = nil
	return cpu, nil
}

// gammu runs one gammu-smsd per modem (it drives a single phone per
// instance) with the files backend. Each instance has its own outbox and
// the submitter deals messages to them in turn, unless shared is set: then
// all instances read one outbox directory.
type gammu struct {
	bin         string
	dir         string
	shared      bool
	commTimeout int
	ds          []*daemon
	outboxes    []string
	seq         atomic.Int64
	text        func(i int) string
}

func (g *gammu) Name() string {
	if g.shared {
		return "gammu-smsd, shared outbox"
	}
	return "gammu-smsd"
}

// PollPeriod is CommTimeout: how long gammu-smsd waits after finding the
// outbox empty before it looks again.
func (g *gammu) PollPeriod() time.Duration { return time.Duration(g.commTimeout) * time.Second }

func (g *gammu) Start(ctx context.Context, mods []*simModem) error {
	g.outboxes = nil
	shared := filepath.Join(g.dir, "outbox")
	if g.shared {
		if err := os.MkdirAll(shared, 0o755); err != nil {
			return err
		}
		g.outboxes = []string{shared}
	}
	for i, m := range mods {
		inst := filepath.Join(g.dir, fmt.Sprint("gsm", i+1))
		outbox := filepath.Join(inst, "outbox")
		if g.shared {
			outbox = shared
		} else {
			g.outboxes = append(g.outboxes, outbox)
		}
		for _, sub := range []string{"inbox", "outbox", "sent", "error"} {
			if err := os.MkdirAll(filepath.Join(inst, sub), 0o755); err != nil {
				return err
			}
		}
		conf := fmt.Sprintf("[gammu]\ndevice = %s\nconnection = at115200\n[smsd]\nservice = files\ninboxpath = %[2]s/inbox/\noutboxpath = %[3]s/\nsentsmspath = %[2]s/sent/\nerrorsmspath = %[2]s/error/\nlogfile = %[2]s/smsd.log\ncommtimeout = %[4]d\nsendtimeout = 20\n",
			m.Path(), inst, outbox, g.commTimeout)
		confPath := filepath.Join(inst, "smsdrc")
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			return err
		}
		d, err := startDaemon(filepath.Join(inst, "smsd.out"), g.bin, "-c", confPath)
		if err != nil {
			g.Stop()
			return err
		}
		g.ds = append(g.ds, d)
	}
	alive := func() error {
		var errs []error
		for _, d := range g.ds {
			errs = append(errs, d.alive())
		}
		return errors.Join(errs...)
	}
	if err := waitSettled(ctx, mods, 60*time.Second, alive); err != nil {
		g.Stop()
		return fmt.Errorf("gammu-smsd: %w (see the smsd.log files under %s)", err, g.dir)
	}
	return nil
}

// Submit writes message i straight into an outbox in the files backend's
// format (OUT<priority><date>_<time>_<serial>_<number>_<note>.txt), which
// gammu-smsd-inject would also do, without its per-message process. The
// file is written under a hidden name, which gammu-smsd skips, then
// renamed.
func (g *gammu) Submit(_ context.Context, i int) (time.Time, error) {
	start := time.Now()
	n := g.seq.Add(1)
	box := g.outboxes[int(n-1)%len(g.outboxes)]
	name := fmt.Sprintf("OUTC%s_%06d_%s_bench.txt", start.Format("20060102_150405"), n, number(i))
	err := writeSpool(filepath.Join(box, fmt.Sprintf(".tmp-%06d", n)), filepath.Join(box, name), []byte(g.text(i)))
	return start, err
}

func (g *gammu) Stop() (time.Duration, error) {
	var cpu time.Duration
	for _, d := range g.ds {
		cpu += d.stop()
	}
	g.ds = nil
	return cpu, nil
}
