package sim

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// writeTimeout bounds how long the modem waits for a client that does not
// read its output; a real modem's UART drops what the host does not take.
const writeTimeout = 2 * time.Second

// modemPort is the pseudo-terminal a Modem answers on. The modem holds the
// master; clients open the slave (/dev/pts/N) like a serial port.
//
// The modem keeps no slave descriptor open, so the master reports whether a
// client is connected: while no process holds the slave open, reads on the
// master fail with EIO and poll reports POLLHUP. The modem uses that to
// behave like a serial port, which drops the modem's output while closed and
// discards unread input when the last client closes it.
type modemPort struct {
	master *os.File
	path   string
	closed chan struct{}
	once   sync.Once

	mu    sync.Mutex // serialises writes with the flush on hangup
	dirty bool       // written to since the last flush
}

// openModemPort creates a pseudo-terminal in raw mode with no client connected.
func openModemPort() (*modemPort, error) {
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("opening pseudo-terminal: %w", err)
	}
	path, err := setupPTYMaster(fd)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &modemPort{
		master: os.NewFile(uintptr(fd), "/dev/ptmx"),
		path:   path,
		closed: make(chan struct{}),
	}, nil
}

// setupPTYMaster unlocks the slave of master fd, puts both sides in raw mode
// and returns the slave's path. It opens and closes the slave once, which
// leaves the master in the hung-up state of "no client".
func setupPTYMaster(fd int) (string, error) {
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		return "", fmt.Errorf("unlocking pseudo-terminal: %w", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		return "", fmt.Errorf("reading pseudo-terminal number: %w", err)
	}
	path := "/dev/pts/" + strconv.FormatUint(uint64(n), 10)
	if err := setRawMode(fd); err != nil {
		return "", fmt.Errorf("setting pseudo-terminal master to raw mode: %w", err)
	}
	slave, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("opening %s: %w", path, err)
	}
	defer unix.Close(slave)
	if err := setRawMode(slave); err != nil {
		return "", fmt.Errorf("setting %s to raw mode: %w", path, err)
	}
	return path, nil
}

// setRawMode sets the terminal fd to raw 8N1 at 115200 baud: no echo, no line
// editing, no signals, no CR/LF translation, no flow control.
func setRawMode(fd int) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR |
		unix.IGNCR | unix.ICRNL | unix.IXON | unix.IXOFF | unix.IXANY
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB | unix.CBAUD | unix.CRTSCTS
	t.Cflag |= unix.CS8 | unix.CREAD | unix.CLOCAL | unix.B115200
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
}

// close closes the master: clients' reads then return EOF or EIO and the
// slave device disappears.
func (p *modemPort) close() {
	p.once.Do(func() {
		close(p.closed)
		p.master.Close()
	})
}

// control runs f with the master's descriptor, which stays open and so
// keeps p.path ours while f runs. It reports false if the port is closed.
func (p *modemPort) control(f func(fd int)) bool {
	rc, err := p.master.SyscallConn()
	if err != nil {
		return false
	}
	return rc.Control(func(fd uintptr) { f(int(fd)) }) == nil
}

// ptyConnected reports whether a client holds the slave open.
func ptyConnected(fd int) bool {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(pfd, 0)
		if err != unix.EINTR {
			return err == nil && pfd[0].Revents&unix.POLLHUP == 0
		}
	}
}

// write sends data to the connected client, or drops it if none is.
func (p *modemPort) write(data []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var conn bool
	if !p.control(func(fd int) { conn = ptyConnected(fd) }) || !conn {
		return nil
	}
	p.dirty = true
	if err := p.master.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return err
	}
	_, err := p.master.Write(data)
	return err
}

// hungUp is called when a read reports that no client holds the slave: it
// discards what the last client left unread, as closing a serial port
// does, so that the next client does not read stale answers.
func (p *modemPort) hungUp() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.dirty {
		return
	}
	p.control(func(fd int) {
		if ptyConnected(fd) {
			return // a new client came already; its data is not stale
		}
		s, err := unix.Open(p.path, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return
		}
		unix.IoctlSetInt(s, unix.TCFLSH, unix.TCIFLUSH)
		unix.Close(s)
		p.dirty = false
	})
}

// isNoClient reports whether err is the EIO of a master without a client.
func isNoClient(err error) bool { return errors.Is(err, syscall.EIO) }

// pointModemLink makes link a symbolic link to target, atomically replacing an
// earlier symbolic link. It refuses to replace anything else.
func pointModemLink(link, target string) error {
	if fi, err := os.Lstat(link); err == nil && fi.Mode()&os.ModeSymlink == 0 {
		return fmt.Errorf("creating link %s: exists and is not a symbolic link", link)
	}
	tmp := filepath.Join(filepath.Dir(link), "."+filepath.Base(link)+".tmp"+strconv.Itoa(os.Getpid()))
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("creating link %s: %w", link, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("creating link %s: %w", link, err)
	}
	return nil
}

// removeModemLink removes link if it is a symbolic link.
func removeModemLink(link string) error {
	fi, err := os.Lstat(link)
	if err != nil || fi.Mode()&os.ModeSymlink == 0 {
		return nil
	}
	if err := os.Remove(link); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("removing link %s: %w", link, err)
	}
	return nil
}
