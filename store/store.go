package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// SchemaVersion is the schema version this package writes and understands.
const SchemaVersion = 1

// maxAttempts bounds how often Update runs its function when commits conflict.
const maxAttempts = 100

var (
	// ErrClosed is returned by operations on a closed DB.
	ErrClosed = errors.New("store is closed")
	// ErrWrongKey is returned by Open when the master key does not match the
	// key the database was created with.
	ErrWrongKey = errors.New("master key does not match the database")
	// ErrSchemaTooNew is returned by Open (and, wrapped in ErrBadBackup, by
	// Restore) for data written by a newer mfad with a higher schema version.
	ErrSchemaTooNew = errors.New("schema version is newer than this program supports")
	// ErrRestoreIncomplete is returned by Open for a directory in which a
	// Restore failed or was interrupted; restore a backup with RestoreDir.
	ErrRestoreIncomplete = errors.New("an interrupted restore left the database incomplete")
	// ErrConflict is returned by Update when its transaction still conflicted
	// after all retries. It is badger.ErrConflict.
	ErrConflict = badger.ErrConflict
	// ErrTxnTooBig is returned (wrapped) by Txn writes when a transaction grows
	// beyond Badger's batch limit. It is badger.ErrTxnTooBig.
	ErrTxnTooBig = badger.ErrTxnTooBig
)

// Options configures Open.
type Options struct {
	// Dir is the Badger directory, created with mode 0700. Ignored when InMemory.
	Dir string
	// InMemory keeps everything in memory (for tests); encryption stays on.
	InMemory bool
	// MasterKey is the 32-byte master key.
	MasterKey []byte
	// Logger receives Badger's warnings and errors and the store's own, with
	// component=store. Nil discards them.
	Logger *slog.Logger
	// Now is the clock for Txn.Now and audit timestamps; time.Now when nil.
	Now func() time.Time
	// Rand is the randomness for backup salts; crypto/rand when nil.
	Rand io.Reader

	// schemaVersion and migrations override SchemaVersion and the built-in
	// migrations (tests only).
	schemaVersion int
	migrations    []Migration
	// beforeSync, when set, runs at the start of every sync round (tests only).
	beforeSync func()
	// onSyncWait, when set, runs whenever an Update starts waiting for a sync
	// round (tests only).
	onSyncWait func()
}

// DB is an open store. It is safe for concurrent use.
type DB struct {
	bdb       *badger.DB
	dir       string // "" when in memory
	masterKey []byte
	log       *slog.Logger
	now       func() time.Time
	rand      io.Reader
	version   int
	migs      []Migration

	syncer *syncer
	// vlogMaybeDirty is set while the value log may hold writes that no
	// sync round covered (see syncRound).
	vlogMaybeDirty atomic.Bool
	fullSyncs      atomic.Uint64 // rounds that synced the value log too
	auditSeq       atomic.Uint32
	commits        atomic.Uint64

	// gate is held shared by every operation and exclusively by Restore and
	// Close; closed is guarded by it.
	gate   sync.RWMutex
	closed bool
}

// Stats describes the size of the store and the group-commit activity.
type Stats struct {
	LSMBytes  int64  // size of the SST tables, as Badger last measured it (every minute)
	VLogBytes int64  // size of the value log files, likewise
	Commits   uint64 // write transactions committed by Update since Open
	Syncs     uint64 // sync rounds run since Open
}

// valueThreshold is Badger's ValueThreshold: values of this size or more
// go to the value log; smaller ones live in the LSM tree and, until a
// memtable is flushed, in its WAL. It must stay below 15% of the memtable.
// None of mfad's records comes near it; Txn.set notes one that does, so
// that the next sync round syncs the value log too.
const valueThreshold = 256 << 10

// restoreMarker is the file that marks a directory whose restore is in progress.
const restoreMarker = "mfad-restore-incomplete"

// Open opens (creating if needed) the store described by opts. It creates the
// schema on an empty database, runs pending migrations and refuses
// (ErrSchemaTooNew) a database with a newer schema. It reads nothing but the
// schema key, so it is fast however large the database is.
func Open(opts Options) (*DB, error) {
	db, err := newDB(opts)
	if err != nil {
		return nil, fmt.Errorf("opening store: %w", err)
	}
	if db.dir != "" {
		if _, err := os.Stat(filepath.Join(db.dir, restoreMarker)); err == nil {
			return nil, fmt.Errorf("opening store %s: %w", db.dir, ErrRestoreIncomplete)
		}
	}
	bdb, err := openBadger(db.dir, db.masterKey, db.log)
	if err != nil {
		return nil, err
	}
	db.bdb = bdb
	db.vlogMaybeDirty.Store(true) // the first round syncs everything
	db.syncer = newSyncer(db.syncRound, db.log, opts.beforeSync, opts.onSyncWait)
	if err := db.migrate(); err != nil {
		db.syncer.stop()
		db.syncer.close()
		bdb.Close()
		return nil, fmt.Errorf("opening store: %w", err)
	}
	return db, nil
}

// newDB checks opts and returns a DB without an open database, creating the
// directory unless opts.InMemory.
func newDB(opts Options) (*DB, error) {
	if len(opts.MasterKey) != MasterKeySize {
		return nil, fmt.Errorf("master key must be %d bytes", MasterKeySize)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	db := &DB{
		masterKey: append([]byte(nil), opts.MasterKey...),
		log:       logger.With("component", "store"),
		now:       opts.Now,
		rand:      randOrDefault(opts.Rand),
		version:   SchemaVersion,
		migs:      builtinMigrations(),
	}
	if db.now == nil {
		db.now = time.Now
	}
	if opts.schemaVersion != 0 {
		db.version = opts.schemaVersion
		db.migs = opts.migrations
	}
	if !opts.InMemory {
		if opts.Dir == "" {
			return nil, errors.New("no directory")
		}
		if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
			return nil, err
		}
		db.dir = opts.Dir
	}
	return db, nil
}

// openBadger opens Badger in dir (in memory if dir is "") with mfad's
// encryption and memory settings.
func openBadger(dir string, masterKey []byte, logger *slog.Logger) (*badger.DB, error) {
	bo := badgerOptions(dir, DeriveKey(masterKey, "mfad badger v1"), logger)
	bdb, err := badger.Open(bo)
	if errors.Is(err, badger.ErrEncryptionKeyMismatch) {
		return nil, fmt.Errorf("opening store: %w", ErrWrongKey)
	}
	if err != nil {
		return nil, fmt.Errorf("opening store: %w", err)
	}
	return bdb, nil
}

// badgerOptions returns Badger options tuned for a small appliance.
//
// Measured with 100,000 users (~90 MB of encrypted, compressed tables) on a
// 2-CPU machine: Open takes 20-70 ms and the idle process has ~30 MB RSS, ~20
// MB of which are mapped table pages. After a burst of writes the Go heap
// settles back to ~25 MB. Flushes and compactions are transiently larger: Badger keeps
// up to 8 table builders in flight, each with buffers of a few times the table
// size, so the settings below keep tables small; a daemon may also set
// GOMEMLIMIT. Pages of the memory-mapped tables that were read count towards
// RSS as well; they are clean page cache that the kernel can reclaim.
func badgerOptions(dir string, key []byte, logger *slog.Logger) badger.Options {
	o := badger.DefaultOptions(dir).
		WithInMemory(dir == "").
		// Durability comes from group commit (see the package documentation).
		WithSyncWrites(false).
		WithEncryptionKey(key).
		// A fresh data key (encrypted with key) is generated weekly (default 10 days).
		WithEncryptionKeyRotationDuration(7 * 24 * time.Hour).
		// Each memtable is a Go-heap arena of MemTableSize + 15% plus a WAL
		// mapping of twice the size; the default 64 MB (x5 memtables) would
		// dwarf everything else. 4 MB holds tens of thousands of records and
		// limits a transaction to ~600 KB (ErrTxnTooBig beyond).
		WithMemTableSize(4 << 20).
		// One active memtable plus one being flushed (default 5).
		WithNumMemtables(2).
		// Must stay below 15% of the memtable; values this large (none in
		// practice) go to the value log instead of the LSM tree.
		WithValueThreshold(valueThreshold).
		// Decrypted, decompressed 4 KB blocks (default 256 MB). Mandatory with
		// encryption; the hot set of an MFA daemon is small.
		WithBlockCacheSize(4 << 20).
		// Decrypted table indexes and bloom filters; without this cache every
		// lookup decrypts them again. 100,000 users need about 5 MB, and a
		// miss costs only CPU.
		WithIndexCacheSize(4 << 20).
		// 512 KB tables on every level (default 2 MB, doubling per level):
		// this cut the heap peak of compactions from ~390 MB to ~150 MB in the
		// measurement above, for ~200 files instead of ~50.
		WithBaseTableSize(512 << 10).
		// A small L0 keeps lookups touching few tables (default 5, stall at 15).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		// The value log is rarely used (see ValueThreshold); files are mapped at
		// twice their size, so keep them small (default 1 GB).
		WithValueLogFileSize(16 << 20).
		// Two is Badger's minimum when compacting at all (default 4).
		WithNumCompactors(2).
		// Goroutines used by streams, i.e. Backup (default 8).
		WithNumGoroutines(2).
		// Badger's expvar metrics are not exported by mfad.
		WithMetricsEnabled(false).
		WithLogger(badgerLogger{logger})
	o.TableSizeMultiplier = 1 // see BaseTableSize
	return o
}

// Close makes all writes durable and closes the database. It waits for running
// operations to finish. Calling Close again returns nil.
func (db *DB) Close() error {
	db.gate.Lock()
	defer db.gate.Unlock()
	if db.closed {
		return nil
	}
	return db.closeLocked()
}

// closeLocked is Close for a caller holding the gate exclusively.
func (db *DB) closeLocked() error {
	db.closed = true
	db.syncer.stop()
	db.vlogMaybeDirty.Store(true) // a last, full sync
	err := db.syncRound()
	err = errors.Join(err, db.syncer.close())
	if cerr := db.bdb.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if err != nil {
		return fmt.Errorf("closing store: %w", err)
	}
	return nil
}

// Badger returns the underlying Badger database, for statistics and tests only.
func (db *DB) Badger() *badger.DB { return db.bdb }

// Stats returns the current sizes and group-commit counters. It may be called
// after Close.
func (db *DB) Stats() Stats {
	lsm, vlog := db.bdb.Size()
	return Stats{
		LSMBytes:  lsm,
		VLogBytes: vlog,
		Commits:   db.commits.Load(),
		Syncs:     db.syncer.rounds.Load(),
	}
}

// enter admits an operation unless the DB is closed; the caller must call the
// returned function when done.
func (db *DB) enter() (func(), error) {
	db.gate.RLock()
	if db.closed {
		db.gate.RUnlock()
		return nil, ErrClosed
	}
	return db.gate.RUnlock, nil
}

// Update runs fn in a read-write transaction and commits it. On a commit
// conflict it runs fn again (up to 100 attempts, with a short randomised
// backoff that honours ctx). After a commit that wrote anything it waits for a
// group sync: when Update returns nil the writes are durable. An error returned
// by fn aborts the transaction and is returned unchanged. See the package
// documentation for errors that happen after the commit.
func (db *DB) Update(ctx context.Context, fn func(*Txn) error) error {
	leave, err := db.enter()
	if err != nil {
		return err
	}
	defer leave()
	return db.update(ctx, fn)
}

// UpdateVolatile is Update for writes whose loss in a crash is harmless
// (a login in progress, which then simply expires): it returns once the
// transaction committed, without waiting for the disk. The writes are
// visible to every later transaction at once, and durable once any later
// Update (or WaitDurable) returns. It saves the fsync wait on hot paths
// that write such state before the decision that matters.
func (db *DB) UpdateVolatile(ctx context.Context, fn func(*Txn) error) error {
	leave, err := db.enter()
	if err != nil {
		return err
	}
	defer leave()
	return db.commit(ctx, fn, false)
}

// UpdateLazy is Update for writes that must reach the disk soon, but need
// not hold up their caller or take a sync round of their own: it returns
// once the transaction committed, and the writes are durable once a sync
// round that began after the commit has ended. Another caller's round
// usually does that at once; if none has begun within `within`, UpdateLazy
// asks for one itself. Use it for records whose loss in a power failure
// within that window is recoverable (an SMS outcome: the message is then
// sent again, audited as a possible duplicate).
func (db *DB) UpdateLazy(ctx context.Context, fn func(*Txn) error, within time.Duration) error {
	leave, err := db.enter()
	if err != nil {
		return err
	}
	defer leave()
	var wrote bool
	err = db.commit(ctx, func(txn *Txn) error {
		err := fn(txn)
		wrote = txn.wrote
		return err
	}, false)
	if err != nil || !wrote || db.dir == "" {
		return err
	}
	// A round that has begun may have begun before the commit; the next
	// one to begin cannot have.
	after := db.syncer.started.Load() + 1
	time.AfterFunc(within, func() {
		if db.syncer.rounds.Load() >= after {
			return
		}
		if err := db.WaitDurable(context.Background()); err != nil && !errors.Is(err, ErrClosed) {
			db.log.Error("a lazily synced write could not be made durable", "err", err)
		}
	})
	return nil
}

// WaitDurable returns once every write committed before the call is
// durable (a group sync that started after the call has finished).
func (db *DB) WaitDurable(ctx context.Context) error {
	leave, err := db.enter()
	if err != nil {
		return err
	}
	defer leave()
	if db.dir == "" {
		return nil
	}
	return db.syncer.wait(ctx)
}

// update is Update without the gate, for callers that hold it.
func (db *DB) update(ctx context.Context, fn func(*Txn) error) error {
	return db.commit(ctx, fn, true)
}

// commit runs fn in transactions until one commits, then, when durable is
// set and it wrote anything, waits for a group sync.
func (db *DB) commit(ctx context.Context, fn func(*Txn) error, durable bool) error {
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		wrote, toVlog, fnErr, commitErr := db.attempt(fn)
		if fnErr != nil {
			return fnErr
		}
		if commitErr == nil {
			if !wrote {
				return nil
			}
			if toVlog {
				// After the commit, so that every round that starts
				// after this one's wait syncs the value log too.
				db.vlogMaybeDirty.Store(true)
			}
			db.commits.Add(1)
			if db.dir == "" || !durable {
				return nil // nothing to sync in memory, or not asked to
			}
			return db.syncer.wait(ctx)
		}
		if !errors.Is(commitErr, badger.ErrConflict) {
			return fmt.Errorf("committing: %w", commitErr)
		}
		if attempt == maxAttempts {
			return fmt.Errorf("committing after %d attempts: %w", attempt, commitErr)
		}
		if err := backoff(ctx, attempt); err != nil {
			return err
		}
	}
}

// attempt runs fn once in a fresh transaction and commits it.
func (db *DB) attempt(fn func(*Txn) error) (wrote, toVlog bool, fnErr, commitErr error) {
	bt := db.bdb.NewTransaction(true)
	defer bt.Discard()
	t := &Txn{bt: bt, db: db}
	if err := fn(t); err != nil {
		return false, false, err, nil
	}
	return t.wrote, t.toVlog, nil, bt.Commit()
}

// backoff waits a random time that grows with attempt (50 µs doubling, capped
// at 10 ms), or until ctx ends.
func backoff(ctx context.Context, attempt int) error {
	limit := min(50*time.Microsecond<<min(attempt, 10), 10*time.Millisecond)
	t := time.NewTimer(rand.N(limit) + 1)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// View runs fn in a read-only transaction. Writes in fn fail.
func (db *DB) View(fn func(*Txn) error) error {
	leave, err := db.enter()
	if err != nil {
		return err
	}
	defer leave()
	return db.bdb.View(func(bt *badger.Txn) error {
		return fn(&Txn{bt: bt, db: db})
	})
}

// syncRound makes every committed write durable; see the package
// documentation. Badger's DB.Sync msyncs the active memtable WAL and the
// active value log file; but values below valueThreshold never reach the
// value log, so while no larger value was written since the last full
// round, syncing the WAL alone (syncActive) makes every commit durable and
// saves the value log's flush, a second device flush on every round.
func (db *DB) syncRound() error {
	if db.dir == "" {
		return nil
	}
	if db.vlogMaybeDirty.Swap(false) {
		if err := db.bdb.Sync(); err != nil {
			db.vlogMaybeDirty.Store(true)
			return err
		}
		db.fullSyncs.Add(1)
		return db.syncer.syncRotated(db.dir)
	}
	return db.syncer.syncActive(db.dir)
}
