package modem

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// peer is a scripted modem on the master side of a real pseudo-terminal.
// It answers like a minimal modem (echo off, PDU mode, registered) unless
// a test overrides commands, and lets tests put bytes on the line at exact
// points of an exchange: URCs inside an answer, late or stale final
// results, silence. The driver under test opens the slave side through
// tarm/serial exactly as it opens a real modem.
type peer struct {
	t      testing.TB
	master *os.File
	path   string

	wmu    sync.Mutex // serialises writes to master
	closed bool       // guarded by wmu

	mu        sync.Mutex
	commands  []string
	bodies    []string
	overrides map[string]func(p *peer, cmd string)
	onBody    func(p *peer, body string)
	mr        int
}

func newPeer(t testing.TB) *peer {
	t.Helper()
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("opening /dev/ptmx: %v", err)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(fd)
		t.Fatalf("unlocking pty: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		unix.Close(fd)
		t.Fatalf("pty number: %v", err)
	}
	// A non-blocking descriptor goes through the poller, so Close wakes
	// the reader below.
	p := &peer{
		t:         t,
		master:    os.NewFile(uintptr(fd), "ptmx"),
		path:      fmt.Sprintf("/dev/pts/%d", n),
		overrides: map[string]func(*peer, string){},
	}
	p.onBody = func(p *peer, body string) { p.reply(fmt.Sprintf("+CMGS: %d", p.nextMR()), "OK") }
	done := make(chan struct{})
	go func() { defer close(done); p.read() }()
	t.Cleanup(func() {
		p.wmu.Lock()
		p.closed = true
		p.master.Close()
		p.wmu.Unlock()
		<-done
	})
	return p
}

func (p *peer) nextMR() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mr++
	return p.mr
}

// on overrides the answer to cmd (without "AT"); a key ending in "="
// matches every set command of that name.
func (p *peer) on(cmd string, f func(p *peer, cmd string)) {
	p.mu.Lock()
	p.overrides[cmd] = f
	p.mu.Unlock()
}

func (p *peer) setOnBody(f func(p *peer, body string)) {
	p.mu.Lock()
	p.onBody = f
	p.mu.Unlock()
}

// raw writes bytes to the line.
func (p *peer) raw(s string) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.closed {
		return // a delayed answer after the test ended
	}
	if _, err := p.master.Write([]byte(s)); err != nil {
		p.t.Logf("peer write: %v", err)
	}
}

// reply writes lines as a modem does: each framed by CR LF.
func (p *peer) reply(lines ...string) {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("\r\n" + l + "\r\n")
	}
	p.raw(b.String())
}

func (p *peer) sent() (cmds, bodies []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.commands...), append([]string(nil), p.bodies...)
}

func (p *peer) count(cmd string) int {
	cmds, _ := p.sent()
	n := 0
	for _, c := range cmds {
		if c == cmd {
			n++
		}
	}
	return n
}

func (p *peer) read() {
	var (
		line   []byte
		body   []byte
		inBody bool
		buf    = make([]byte, 1024)
	)
	for {
		n, err := p.master.Read(buf)
		for _, c := range buf[:n] {
			switch {
			case inBody && c == 0x1a:
				inBody = false
				b := string(body)
				body = nil
				p.mu.Lock()
				p.bodies = append(p.bodies, b)
				f := p.onBody
				p.mu.Unlock()
				f(p, b)
			case inBody && c == 0x1b:
				inBody, body = false, nil
				p.reply("OK")
			case inBody:
				body = append(body, c)
			case c == 0x1b:
				line = line[:0]
			case c == '\r':
				cmd := string(line)
				line = line[:0]
				if !strings.HasPrefix(strings.ToUpper(cmd), "AT") {
					continue
				}
				cmd = cmd[2:]
				if p.answer(cmd) {
					inBody = true
				}
			case c >= 0x20:
				line = append(line, c)
			}
		}
		if err != nil {
			return
		}
	}
}

// answer answers one command and reports whether it opened a prompt.
func (p *peer) answer(cmd string) bool {
	p.mu.Lock()
	p.commands = append(p.commands, cmd)
	f := p.overrides[cmd]
	if f == nil {
		if i := strings.IndexByte(cmd, '='); i >= 0 {
			f = p.overrides[cmd[:i+1]]
		}
	}
	p.mu.Unlock()
	if f != nil {
		f(p, cmd)
		return strings.HasPrefix(cmd, "+CMGS=")
	}
	switch {
	case cmd == "+CGMI":
		p.reply("peer", "OK")
	case cmd == "+CGMM":
		p.reply("scripted", "OK")
	case cmd == "+CGMR":
		p.reply("1.0", "OK")
	case cmd == "+CPIN?":
		p.reply("+CPIN: READY", "OK")
	case cmd == "+CREG?":
		p.reply("+CREG: 0,1", "OK")
	case cmd == "+CEREG?":
		p.reply("+CEREG: 0,1", "OK")
	case cmd == "+CSQ":
		p.reply("+CSQ: 15,99", "OK")
	case cmd == "+COPS?":
		p.reply(`+COPS: 0,0,"peer-net",7`, "OK")
	case strings.HasPrefix(cmd, "+CMGS="):
		p.raw("\r\n> ")
		return true
	case cmd == "", cmd == "Z", cmd == "E0", strings.HasPrefix(cmd, "+CMEE="),
		strings.HasPrefix(cmd, "+CMGF="), strings.HasPrefix(cmd, "+CNMI="),
		strings.HasPrefix(cmd, "+COPS="), strings.HasPrefix(cmd, "+CSMP="):
		p.reply("OK")
	default:
		p.reply("ERROR")
	}
	return false
}

// prompt answers a +CMGS override with the prompt.
func prompt(p *peer, _ string) { p.raw("\r\n> ") }

// peerConfig is a Config for a peer with short timeouts.
func peerConfig(p *peer) Config {
	return Config{
		Name:             "peer",
		Device:           p.path,
		CommandTimeout:   2 * time.Second,
		SendTimeout:      3 * time.Second,
		RegisterTimeout:  10 * time.Second,
		HealthInterval:   time.Hour,
		ReopenBackoff:    50 * time.Millisecond,
		ReopenBackoffMax: 500 * time.Millisecond,
	}
}

// logBuf routes logs to t.Log and keeps them for assertions.
type logBuf struct {
	t  testing.TB
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.b.Write(p)
	l.mu.Unlock()
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// openPeer opens a Modem on p and waits until it is ready.
func openPeer(t testing.TB, p *peer, cfg Config) (*Modem, *logBuf) {
	t.Helper()
	lb := &logBuf{t: t}
	if cfg.Trace == nil {
		cfg.Trace = lb
	}
	m, err := Open(context.Background(), cfg, slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	eventually(t, "modem ready", func() bool { return m.Status().State == StateReady })
	return m, lb
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
