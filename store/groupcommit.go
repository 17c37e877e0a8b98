package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// syncer implements group commit: committers wait for a sync round that starts
// after they call wait, and one goroutine runs rounds back to back while anyone
// is waiting.
type syncer struct {
	sync       func() error
	log        *slog.Logger
	beforeSync func()
	onWait     func()

	mu   sync.Mutex
	next *syncRound // the round that new waiters join; nil if nobody waits

	// lastWaiters is how many waiters the previous round served; only the
	// sync goroutine uses it.
	lastWaiters int

	kick   chan struct{} // capacity 1: "a round is wanted"
	quit   chan struct{}
	exited chan struct{}
	// started counts the rounds whose sync has begun, rounds those that
	// ended; rounds run one at a time, in order.
	started, rounds atomic.Uint64

	// synced holds the names of rotated-out WAL and value log files already
	// fsynced, and active the names of the active ones when the directory was
	// last fsynced; only the sync goroutine (or Close, after it stopped) uses
	// them.
	synced map[string]bool
	active string
	// mem is the active memtable WAL, number memID, as of the last listing,
	// kept open for syncActive.
	mem   *os.File
	memID uint64
}

// syncRound is one sync; done is closed once err is set.
type syncRound struct {
	done    chan struct{}
	err     error
	waiters int // guarded by syncer.mu
}

// Coalescing: when the previous round served at least coalesceMin waiters,
// the next round waits coalesceWindow before it starts, so that more
// commits share its fsync. Under load this trades a millisecond of latency
// for far fewer syncs (measured: daemon CPU per verification 264 -> 185 us
// and +20% throughput with 32 clients); a lone request is never delayed.
const (
	coalesceMin    = 4
	coalesceWindow = time.Millisecond
)

func newSyncer(syncFn func() error, log *slog.Logger, beforeSync, onWait func()) *syncer {
	s := &syncer{
		sync:       syncFn,
		log:        log,
		beforeSync: beforeSync,
		onWait:     onWait,
		kick:       make(chan struct{}, 1),
		quit:       make(chan struct{}),
		exited:     make(chan struct{}),
		synced:     make(map[string]bool),
	}
	go s.run()
	return s
}

// wait blocks until a sync round that started after the call has completed and
// returns that round's error, or until ctx ends.
func (s *syncer) wait(ctx context.Context) error {
	s.mu.Lock()
	r := s.next
	if r == nil {
		r = &syncRound{done: make(chan struct{})}
		s.next = r
	}
	r.waiters++
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default: // a round is already wanted
	}
	if s.onWait != nil {
		s.onWait()
	}
	select {
	case <-r.done:
		if r.err != nil {
			return fmt.Errorf("syncing: %w", r.err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for sync: %w", ctx.Err())
	}
}

func (s *syncer) run() {
	defer close(s.exited)
	for {
		select {
		case <-s.kick:
			s.round()
		case <-s.quit:
			s.round() // serve anyone who is still waiting
			return
		}
	}
}

// round takes the waiting round, so later waiters join a new one, and syncs.
func (s *syncer) round() {
	if s.lastWaiters >= coalesceMin {
		time.Sleep(coalesceWindow)
	}
	s.mu.Lock()
	r := s.next
	s.next = nil
	if r != nil {
		s.lastWaiters = r.waiters
	}
	s.mu.Unlock()
	if r == nil {
		return
	}
	s.started.Add(1) // before the sync begins: see UpdateLazy
	if s.beforeSync != nil {
		s.beforeSync()
	}
	r.err = s.sync()
	s.rounds.Add(1)
	if r.err != nil {
		s.log.Error("group sync failed", "err", r.err)
	}
	close(r.done)
}

// stop ends the sync goroutine after it served the current waiters. Callers
// must ensure nobody calls wait afterwards.
func (s *syncer) stop() {
	close(s.quit)
	<-s.exited
}

// syncRotated fsyncs every memtable WAL (*.mem) and value log file (*.vlog) in
// dir except the newest of each kind (the active ones, which badger's DB.Sync
// covers) and except those it already synced. Badger never writes to such a
// file again once a newer one exists. A file that vanished was flushed into an
// SST or garbage collected. When a new file has appeared since the last call,
// it also fsyncs dir, so that the new names are durable too.
func (s *syncer) syncRotated(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("listing database directory: %w", err)
	}
	type file struct {
		name string
		id   uint64
	}
	files := map[string][]file{} // by extension
	newest := map[string]uint64{}
	present := make(map[string]bool, len(entries))
	for _, e := range entries {
		name := e.Name()
		ext := filepath.Ext(name)
		if ext != ".mem" && ext != ".vlog" {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSuffix(name, ext), 10, 64)
		if err != nil {
			continue
		}
		present[name] = true
		files[ext] = append(files[ext], file{name, id})
		newest[ext] = max(newest[ext], id)
	}
	for name := range s.synced {
		if !present[name] {
			delete(s.synced, name)
		}
	}
	for ext, list := range files {
		for _, f := range list {
			if f.id == newest[ext] || s.synced[f.name] {
				continue
			}
			if err := fsyncFile(filepath.Join(dir, f.name)); err != nil {
				return err
			}
			s.synced[f.name] = true
		}
	}
	if active := fmt.Sprint(newest[".mem"], newest[".vlog"]); active != s.active {
		if err := syncDir(dir); err != nil {
			return fmt.Errorf("syncing database directory: %w", err)
		}
		s.active = active
	}
	if id, ok := newest[".mem"]; ok && (s.mem == nil || id != s.memID) {
		f, err := os.Open(filepath.Join(dir, memFileName(id)))
		if err != nil {
			return fmt.Errorf("opening the active memtable log: %w", err)
		}
		if s.mem != nil {
			s.mem.Close()
		}
		s.mem, s.memID = f, id
	}
	return nil
}

// memFileName is the name Badger gives memtable WAL number id.
func memFileName(id uint64) string { return fmt.Sprintf("%05d.mem", id) }

// syncActive makes every commit durable while the value log holds nothing
// unsynced: it fdatasyncs the active memtable WAL through the descriptor
// kept open (a separate descriptor also writes back the pages Badger wrote
// through its mapping). When Badger has moved to a newer WAL since the last
// listing (the next number exists, or the file kept open was deleted after
// a flush) it lists the directory first, as syncRotated, which syncs the
// WALs rotated out meanwhile and opens the new active one. Either check is
// a system call or two; the listing is done only when needed.
func (s *syncer) syncActive(dir string) error {
	if s.mem == nil || s.rotated(dir) {
		if err := s.syncRotated(dir); err != nil {
			return err
		}
		if s.mem == nil {
			return errors.New("no memtable log in the database directory")
		}
	}
	if err := unix.Fdatasync(int(s.mem.Fd())); err != nil {
		return fmt.Errorf("syncing the memtable log: %w", err)
	}
	return nil
}

// rotated reports whether the WAL kept open is no longer the active one.
func (s *syncer) rotated(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, memFileName(s.memID+1))); err == nil {
		return true
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(s.mem.Fd()), &st); err != nil || st.Nlink == 0 {
		return true
	}
	return false
}

// close releases the descriptor of the active WAL.
func (s *syncer) close() error {
	if s.mem == nil {
		return nil
	}
	err := s.mem.Close()
	s.mem = nil
	return err
}

// fsyncFile fsyncs the file at path; a file that no longer exists is fine.
func fsyncFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("opening rotated log: %w", err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("syncing rotated log: %w", err)
	}
	return nil
}
