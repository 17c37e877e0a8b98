package modem

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tarm/serial"
)

// This file is the bottom layer: the serial port and the byte stream on
// top of it. Only dial touches /dev.
//
// A link owns one open port and the goroutine that reads it (the pump).
// The AT layer never reads the port directly: it reads a view of the link
// that the pump feeds and that can be ended at once. Ending a view gives
// the AT layer EOF, so a wedged modem can be re-initialised
// with a fresh AT layer over the same port, without closing it. This
// matters because tarm/serial puts the descriptor in blocking mode: a
// Close does not wake a pending read, so a port closed and reopened while
// its reader still waits would share the modem's replies between the stale
// reader and the new one. Ports are therefore only closed when the pump
// has already failed (the device vanished) or when the device path now
// names another device; the close is never waited for.

// errLinkClosed is returned by writes to a link or view that was ended.
var errLinkClosed = errors.New("port closed")

// devID identifies the device a path resolved to.
type devID struct{ rdev, ino uint64 }

func statDev(path string) (devID, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return devID{}, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return devID{}, false
	}
	return devID{rdev: uint64(st.Rdev), ino: st.Ino}, true
}

// link is an open serial port and its reader.
type link struct {
	path  string
	dev   devID
	port  io.ReadWriteCloser
	guard *guard
	trace *tracer
	onURC func(line string, u *urc) // called on the pump goroutine; must not block

	lastRead atomic.Int64 // unix nanoseconds of the last byte read

	mu   sync.Mutex
	view *view
	err  error
	dead chan struct{} // closed when the port failed or was closed

	closeOnce sync.Once
}

// dial opens the port at path. ReadTimeout stays 0 (block until data): a
// read timeout makes tarm/serial report an idle line as EOF.
func dial(path string, baud int, g *guard, t *tracer, onURC func(string, *urc)) (*link, error) {
	p, err := serial.OpenPort(&serial.Config{Name: path, Baud: baud})
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	l := &link{path: path, port: p, guard: g, trace: t, onURC: onURC, dead: make(chan struct{})}
	l.dev, _ = statDev(path)
	l.lastRead.Store(time.Now().UnixNano())
	go l.pump()
	return l, nil
}

func (l *link) pump() {
	sc := &lineScanner{emit: func(line string, u *urc) {
		l.trace.read(line)
		if u != nil && l.onURC != nil {
			l.onURC(line, u)
		}
	}}
	buf := make([]byte, 4096)
	for {
		n, err := l.port.Read(buf)
		if n > 0 {
			l.lastRead.Store(time.Now().UnixNano())
			chunk := append([]byte(nil), buf[:n]...)
			sc.write(chunk)
			l.deliver(chunk)
		}
		if err != nil {
			l.fail(fmt.Errorf("reading %s: %w", l.path, err))
			return
		}
		if n == 0 {
			// A blocking tty read returns 0 only after a hangup.
			l.fail(fmt.Errorf("reading %s: %w", l.path, io.EOF))
			return
		}
	}
}

// deliver hands a chunk to the current view, if any. It blocks while
// the view is not reading, until the view or the link ends.
func (l *link) deliver(chunk []byte) {
	l.mu.Lock()
	s := l.view
	l.mu.Unlock()
	if s == nil {
		return
	}
	select {
	case s.in <- chunk:
	case <-s.done:
	case <-l.dead:
	}
}

// fail marks the link dead with err and closes the port in the background.
func (l *link) fail(err error) {
	l.mu.Lock()
	if l.err == nil {
		l.err = err
	}
	l.mu.Unlock()
	l.closeOnce.Do(func() {
		close(l.dead)
		// Close may not return while a read is pending; never wait for it.
		go l.port.Close()
	})
}

func (l *link) close() { l.fail(errLinkClosed) }

// failed returns the error that killed the link, or nil.
func (l *link) failed() error {
	select {
	case <-l.dead:
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.err
	default:
		return nil
	}
}

// stale reports whether the link's path now names another device or none:
// the device was replaced, so the link should be dropped.
func (l *link) stale() bool {
	d, ok := statDev(l.path)
	return !ok || d != l.dev
}

// quiet waits until nothing was read for d, or until max passed. It
// returns whether the line went quiet.
func (l *link) quiet(d, max time.Duration) bool {
	deadline := time.Now().Add(max)
	for {
		idle := time.Since(time.Unix(0, l.lastRead.Load()))
		if idle >= d {
			return true
		}
		wait := d - idle
		if time.Now().Add(wait).After(deadline) {
			return false
		}
		select {
		case <-time.After(wait):
		case <-l.dead:
			return false
		}
	}
}

func (l *link) write(p []byte) (int, error) {
	if err := l.failed(); err != nil {
		return 0, err
	}
	return l.guard.write(p, func(p []byte) (int, error) {
		l.trace.write(p)
		n, err := l.port.Write(p)
		if err != nil {
			l.fail(fmt.Errorf("writing %s: %w", l.path, err))
		}
		return n, err
	})
}

// attach starts a new view, ending the previous one.
func (l *link) attach() *view {
	s := &view{l: l, in: make(chan []byte, 16), done: make(chan struct{})}
	l.mu.Lock()
	old := l.view
	l.view = s
	l.mu.Unlock()
	if old != nil {
		old.end()
	}
	return s
}

// view is the io.ReadWriter the AT layer runs on.
type view struct {
	l    *link
	in   chan []byte
	done chan struct{}
	once sync.Once
	rest []byte // read side only
}

func (s *view) Read(p []byte) (int, error) {
	for len(s.rest) == 0 {
		select {
		case b := <-s.in:
			s.rest = b
		case <-s.done:
			return 0, io.EOF
		case <-s.l.dead:
			select {
			case b := <-s.in:
				s.rest = b
			default:
				return 0, io.EOF
			}
		}
	}
	n := copy(p, s.rest)
	s.rest = s.rest[n:]
	return n, nil
}

func (s *view) Write(p []byte) (int, error) {
	select {
	case <-s.done:
		return 0, errLinkClosed
	default:
	}
	return s.l.write(p)
}

// end ends the view: the AT layer reads EOF and closes.
func (s *view) end() {
	s.once.Do(func() {
		close(s.done)
		s.l.mu.Lock()
		if s.l.view == s {
			s.l.view = nil
		}
		s.l.mu.Unlock()
	})
}

// guard decides, atomically with the write, whether an SMS body may still
// be written. Send arms it before each +CMGS; once Send has given up
// waiting (forbid) the body can no longer go out, so "Failed" is certain,
// and once the body went out, giving up means "Unknown".
type guard struct {
	mu    sync.Mutex
	state guardState
}

type guardState int

const (
	guardIdle      guardState = iota
	guardArmed                // a +CMGS is in progress; its body may be written once
	guardWritten              // the body was written (or the write was attempted)
	guardForbidden            // the send was abandoned; no body may be written
)

var errBodyForbidden = errors.New("message body withheld: send abandoned")

// write writes p through w, unless p is an SMS body (it ends with Ctrl-Z)
// that may not be written.
func (g *guard) write(p []byte, w func([]byte) (int, error)) (int, error) {
	if len(p) == 0 || p[len(p)-1] != 0x1a {
		return w(p)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state == guardForbidden {
		return 0, errBodyForbidden
	}
	g.state = guardWritten
	return w(p)
}

// arm prepares for one body. It fails if the send was abandoned.
func (g *guard) arm() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state == guardForbidden {
		return false
	}
	g.state = guardArmed
	return true
}

// busy reports whether a +CMGS is in progress (armed or written).
func (g *guard) busy() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.state == guardArmed || g.state == guardWritten
}

// written reports whether the body of the current part was written.
func (g *guard) written() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.state == guardWritten
}

// forbid abandons the send: no body may be written from now on. It returns
// false if the current part's body was already written.
func (g *guard) forbid() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state == guardWritten {
		return false
	}
	g.state = guardForbidden
	return true
}

// settle ends the current part: its body, if written, has its final result.
func (g *guard) settle() {
	g.mu.Lock()
	if g.state != guardForbidden {
		g.state = guardIdle
	}
	g.mu.Unlock()
}

// reset makes the guard ready for the next send.
func (g *guard) reset() {
	g.mu.Lock()
	g.state = guardIdle
	g.mu.Unlock()
}
