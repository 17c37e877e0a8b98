package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestGroupCommitSharesSyncs holds the first sync round of the writers until
// every writer has committed and is waiting, so that all writers but the ones
// in the held round share the next one.
func TestGroupCommitSharesSyncs(t *testing.T) {
	const writers = 20
	// A release channel sent to armed makes the next sync round wait for it.
	armed := make(chan chan struct{}, 1)
	waiting := make(chan struct{}, writers+1)
	db := openWith(t, Options{
		Dir:       t.TempDir(),
		MasterKey: testMasterKey(1),
		beforeSync: func() {
			select {
			case release := <-armed:
				<-release
			default:
			}
		},
		onSyncWait: func() { waiting <- struct{}{} },
	})
	<-waiting // Open's schema write
	opened := db.Stats()
	release := make(chan struct{})
	armed <- release

	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Go(func() {
			errs <- db.Update(context.Background(), func(tx *Txn) error {
				return tx.Put(Key("gc", fmt.Sprint(i)), i)
			})
		})
	}
	for range writers {
		<-waiting
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Update: %v", err)
		}
	}
	s := db.Stats()
	commits, syncs := s.Commits-opened.Commits, s.Syncs-opened.Syncs
	if commits != writers {
		t.Errorf("commits = %d, want %d", commits, writers)
	}
	if syncs < 1 || syncs > 2 {
		t.Errorf("%d commits took %d sync rounds, want 1 or 2", commits, syncs)
	}
	for i := range writers {
		var got int
		err := db.View(func(tx *Txn) error {
			found, err := tx.Get(Key("gc", fmt.Sprint(i)), &got)
			if err == nil && !found {
				err = errors.New("not found")
			}
			return err
		})
		if err != nil || got != i {
			t.Errorf("key %d: value %d, %v", i, got, err)
		}
	}
}

func TestGroupCommitConcurrentWriters(t *testing.T) {
	db := openTestDB(t, t.TempDir())
	const writers, each = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				errs <- db.Update(context.Background(), func(tx *Txn) error {
					return tx.Put(Key("w", fmt.Sprint(w), fmt.Sprint(i)), i)
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
	}
	s := db.Stats()
	if s.Syncs > s.Commits {
		t.Errorf("more sync rounds (%d) than commits (%d)", s.Syncs, s.Commits)
	}
	t.Logf("%d commits, %d sync rounds", s.Commits, s.Syncs)
	n := 0
	err := db.View(func(tx *Txn) error {
		return tx.Scan(Key("w", ""), false, func([]byte, func(any) error) (bool, error) { n++; return true, nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != writers*each {
		t.Errorf("%d keys stored, want %d", n, writers*each)
	}
}

func TestSyncErrorReachesEveryWaiter(t *testing.T) {
	errDisk := errors.New("disk on fire")
	const waiters = 8
	release := make(chan struct{})
	waiting := make(chan struct{}, waiters)
	var hold sync.Once
	calls := 0
	s := newSyncer(func() error { calls++; return errDisk }, slog.New(slog.DiscardHandler),
		func() { hold.Do(func() { <-release }) },
		func() { waiting <- struct{}{} })
	defer s.stop()

	var wg sync.WaitGroup
	errs := make(chan error, waiters)
	for range waiters {
		wg.Go(func() { errs <- s.wait(context.Background()) })
	}
	for range waiters {
		<-waiting
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, errDisk) {
			t.Errorf("waiter got %v, want the sync error", err)
		}
	}
	if got := s.rounds.Load(); got < 1 || got > 2 {
		t.Errorf("%d rounds for %d waiters, want 1 or 2", got, waiters)
	}
}

func TestSyncWaitHonoursContext(t *testing.T) {
	release := make(chan struct{})
	s := newSyncer(func() error { return nil }, slog.New(slog.DiscardHandler),
		func() { <-release }, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("wait = %v, want context.Canceled", err)
	}
	close(release)
	s.stop()
}

func TestSyncRotated(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"00001.mem", "00002.mem", "00003.mem", "000001.vlog", "000002.vlog", "MANIFEST", "000004.sst", "x.mem"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("data"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := &syncer{synced: map[string]bool{}}
	syncedNames := func() []string {
		var names []string
		for n := range s.synced {
			names = append(names, n)
		}
		sort.Strings(names)
		return names
	}
	steps := []struct {
		name   string
		change func() error
		want   []string
	}{
		{"all but the newest of each kind", func() error { return nil },
			[]string{"000001.vlog", "00001.mem", "00002.mem"}},
		{"flushed memtable forgotten", func() error { return os.Remove(filepath.Join(dir, "00001.mem")) },
			[]string{"000001.vlog", "00002.mem"}},
		{"rotation adds the previous active file", func() error {
			return os.WriteFile(filepath.Join(dir, "00004.mem"), nil, 0o600)
		}, []string{"000001.vlog", "00002.mem", "00003.mem"}},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			if err := step.change(); err != nil {
				t.Fatal(err)
			}
			if err := s.syncRotated(dir); err != nil {
				t.Fatalf("syncRotated: %v", err)
			}
			if got := syncedNames(); fmt.Sprint(got) != fmt.Sprint(step.want) {
				t.Errorf("synced = %v, want %v", got, step.want)
			}
		})
	}
}

// TestSyncAcrossMemtableRotation writes more than a memtable holds, so that
// sync rounds meet rotated-out WALs, and checks everything survives a reopen.
func TestSyncAcrossMemtableRotation(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(Options{Dir: dir, MasterKey: testMasterKey(1)})
	if err != nil {
		t.Fatal(err)
	}
	value := make([]byte, 2048) // JSON-encoded as ~2.7 KB of base64
	const txns, perTxn = 60, 40 // ~6.5 MB, more than one 4 MB memtable
	for i := range txns {
		err := db.Update(context.Background(), func(tx *Txn) error {
			for j := range perTxn {
				if err := tx.Put(Key("bulk", fmt.Sprintf("%03d-%02d", i, j)), value); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("Update %d: %v", i, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTestDB(t, dir)
	n := 0
	err = db.View(func(tx *Txn) error {
		return tx.Scan(Key("bulk", ""), false, func([]byte, func(any) error) (bool, error) { n++; return true, nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != txns*perTxn {
		t.Errorf("%d keys after reopen, want %d", n, txns*perTxn)
	}
}

// TestSyncActiveFollowsRotation checks how a round finds the active WAL
// without listing the directory: it keeps the newest one open and looks
// for its successor, or for it having been deleted after a flush.
func TestSyncActiveFollowsRotation(t *testing.T) {
	dir := t.TempDir()
	write := func(name string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte("data"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("00001.mem")
	write("00002.mem")
	write("000001.vlog")
	s := &syncer{synced: map[string]bool{}}
	defer s.close()
	check := func(step string, wantID uint64, wantSynced string) {
		t.Helper()
		if err := s.syncActive(dir); err != nil {
			t.Fatalf("%s: syncActive: %v", step, err)
		}
		if s.memID != wantID {
			t.Errorf("%s: active WAL %d, want %d", step, s.memID, wantID)
		}
		var names []string
		for n := range s.synced {
			names = append(names, n)
		}
		sort.Strings(names)
		if got := strings.Join(names, " "); got != wantSynced {
			t.Errorf("%s: rotated logs synced: %q, want %q", step, got, wantSynced)
		}
	}
	check("first round lists the directory", 2, "00001.mem")
	if s.rotated(dir) {
		t.Fatal("rotated with no newer WAL")
	}
	write("00003.mem")
	check("successor appears", 3, "00001.mem 00002.mem")
	// Two rotations and a flush between rounds: 00004 came and went,
	// 00003 was flushed and deleted, 00005 is active.
	for _, n := range []string{"00001.mem", "00002.mem", "00003.mem"} {
		if err := os.Remove(filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	write("00005.mem")
	if !s.rotated(dir) {
		t.Fatal("a deleted active WAL not taken for a rotation")
	}
	check("kept file deleted", 5, "")
}

// TestLargeValueSyncsValueLog checks that rounds skip the value log until a
// value large enough for it is committed, and that the next round then
// syncs it; the value survives a reopen.
func TestLargeValueSyncsValueLog(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(Options{Dir: dir, MasterKey: testMasterKey(1)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	put := func(key string, v any) {
		t.Helper()
		if err := db.Update(ctx, func(tx *Txn) error { return tx.Put(Key("t", key), v) }); err != nil {
			t.Fatal(err)
		}
	}
	put("warm", "up") // the first round after Open is a full one
	full := db.fullSyncs.Load()
	for i := range 10 {
		put(fmt.Sprint("small", i), strings.Repeat("x", 1000))
	}
	if got := db.fullSyncs.Load(); got != full {
		t.Fatalf("%d full syncs for small values, want none", got-full)
	}
	big := strings.Repeat("y", valueThreshold)
	put("big", big)
	if got := db.fullSyncs.Load(); got != full+1 {
		t.Fatalf("%d full syncs after a value-log write, want 1", got-full)
	}
	put("after", "small")
	if got := db.fullSyncs.Load(); got != full+1 {
		t.Fatalf("the value log synced again without a new write to it")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTestDB(t, dir)
	var got string
	if err := db.View(func(tx *Txn) error {
		found, err := tx.Get(Key("t", "big"), &got)
		if !found && err == nil {
			err = errors.New("not found")
		}
		return err
	}); err != nil || got != big {
		t.Fatalf("large value after reopen: %d bytes, %v", len(got), err)
	}
}

// TestUpdateLazy checks that a lazy commit returns without a sync round of
// its own, is covered by the next round another writer waits for, and
// otherwise gets its own round within the bound; and that a bound running
// out after Close does no harm.
func TestUpdateLazy(t *testing.T) {
	db, err := Open(Options{Dir: t.TempDir(), MasterKey: testMasterKey(1)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	put := func(key string) {
		t.Helper()
		if err := db.Update(ctx, func(tx *Txn) error { return tx.Put(Key("t", key), "v") }); err != nil {
			t.Fatal(err)
		}
	}
	lazy := func(key string, within time.Duration) {
		t.Helper()
		if err := db.UpdateLazy(ctx, func(tx *Txn) error { return tx.Put(Key("t", key), "v") }, within); err != nil {
			t.Fatal(err)
		}
	}
	put("warm")
	rounds := db.syncer.rounds.Load()

	// Covered by another writer's round: no round of its own, even after
	// the bound.
	lazy("a", 50*time.Millisecond)
	if got := db.syncer.rounds.Load(); got != rounds {
		t.Fatalf("a lazy commit ran %d sync rounds before returning", got-rounds)
	}
	put("b")
	rounds = db.syncer.rounds.Load()
	time.Sleep(200 * time.Millisecond)
	if got := db.syncer.rounds.Load(); got != rounds {
		t.Errorf("%d extra rounds for a lazy commit already covered", got-rounds)
	}

	// Alone: its own round once the bound runs out.
	lazy("c", 20*time.Millisecond)
	deadline := time.Now().Add(10 * time.Second)
	for db.syncer.rounds.Load() == rounds {
		if time.Now().After(deadline) {
			t.Fatal("no sync round after the bound of a lazy commit")
		}
		time.Sleep(5 * time.Millisecond)
	}

	// A bound that runs out after Close.
	lazy("d", 50*time.Millisecond)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	db = openTestDB(t, db.dir)
	for _, k := range []string{"a", "b", "c", "d"} {
		var v string
		if err := db.View(func(tx *Txn) error { _, err := tx.Get(Key("t", k), &v); return err }); err != nil || v != "v" {
			t.Errorf("%s after reopen: %q, %v", k, v, err)
		}
	}
}
