package pam

import (
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The module logs with pam_syslog, which writes to /dev/log. When the
// machine has no syslog daemon (as in CI containers), the tests listen on
// /dev/log themselves for the duration of the run, so they can check what
// the module logs, and that no code ever reaches the log.
var syslogCapture struct {
	once    sync.Once
	mu      sync.Mutex
	conn    *net.UnixConn
	lines   []string
	created bool
	reason  string
}

const devLog = "/dev/log"

func startSyslog() {
	c := &syslogCapture
	if os.Geteuid() != 0 {
		c.reason = "not root"
		return
	}
	if fi, err := os.Lstat(devLog); err == nil {
		// A socket nobody listens on is left over from an interrupted run.
		probe, derr := net.Dial("unixgram", devLog)
		if derr == nil {
			probe.Close()
		}
		if fi.Mode()&os.ModeSocket == 0 || derr == nil || !errors.Is(derr, syscall.ECONNREFUSED) {
			c.reason = devLog + " belongs to the system's syslog daemon"
			return
		}
		os.Remove(devLog)
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: devLog, Net: "unixgram"})
	if err != nil {
		c.reason = "listening on " + devLog + ": " + err.Error()
		return
	}
	_ = os.Chmod(devLog, 0o666)
	c.conn, c.created = conn, true
	go func() {
		buf := make([]byte, 8192)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			c.mu.Lock()
			c.lines = append(c.lines, string(buf[:n]))
			c.mu.Unlock()
		}
	}()
}

func stopSyslog() {
	c := &syslogCapture
	if c.created {
		c.conn.Close()
		os.Remove(devLog)
	}
}

// syslogLines returns the captured log lines that contain marker, or
// ok=false (after logging why) when the log cannot be captured here.
func syslogLines(t testing.TB, marker string) (lines []string, ok bool) {
	t.Helper()
	syslogCapture.once.Do(startSyslog)
	if !syslogCapture.created {
		t.Logf("not checking the module's log: %s", syslogCapture.reason)
		return nil, false
	}
	syslogCapture.mu.Lock()
	defer syslogCapture.mu.Unlock()
	for _, l := range syslogCapture.lines {
		if strings.Contains(l, marker) {
			lines = append(lines, l)
		}
	}
	return lines, true
}

// waitSyslog waits until a captured line contains marker and returns the
// lines with it, or ok=false when the log cannot be captured here.
func waitSyslog(t testing.TB, marker string) (lines []string, ok bool) {
	t.Helper()
	for range 200 {
		lines, ok = syslogLines(t, marker)
		if !ok || len(lines) > 0 {
			return lines, ok
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Errorf("no log line contains %q; log:\n%s", marker, strings.Join(allSyslog(), "\n"))
	return nil, true
}

// allSyslog returns every captured line.
func allSyslog() []string {
	syslogCapture.mu.Lock()
	defer syslogCapture.mu.Unlock()
	return append([]string(nil), syslogCapture.lines...)
}

// captureSyslog starts the capture before a test's first login.
func captureSyslog() { syslogCapture.once.Do(startSyslog) }
