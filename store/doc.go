// Package store provides mfad's encrypted, durable state: an embedded Badger v4
// database with JSON values, group-committed transactions, a schema version with
// migrations, an audit log and encrypted backups.
//
// # Encryption
//
// Everything Badger writes (WAL, value log, SST tables) is encrypted with AES-256
// using a key derived from a 32-byte master key by HKDF-SHA256 (DeriveKey with
// the label "mfad badger v1"). The master key lives outside the database
// directory in a key file (LoadKey, CreateKey, LoadOrCreateKey) that must not be
// accessible by group or others. Opening a database with the wrong master key
// fails with ErrWrongKey. Backups are encrypted separately (see Backup).
//
// # Transactions and concurrency
//
// A *DB is safe for concurrent use. Update runs its function in a serialisable
// read-write transaction and retries it when Badger reports a conflict, so a
// read-modify-write decision (a TOTP step, a recovery code, a failure counter)
// can succeed for at most one of several concurrent callers. The function may
// run more than once and must not have side effects outside its *Txn, and it must
// not call back into the *DB (Restore and Close wait for running transactions).
// A *Txn must not be used after its function returns or from other goroutines.
//
// # Durability
//
// Badger is opened with SyncWrites disabled; Update implements group commit
// instead. After a transaction commits, Update waits until a sync round that
// started after the commit has completed; a single background goroutine runs
// rounds back to back while anyone waits, so concurrent committers share one
// fsync. Under load (a round that served several waiters) the next round
// first waits a millisecond so that more commits share it; a lone commit is
// never delayed. When Update returns nil, the writes are on stable storage.
// When it returns an error after the commit (a failed sync, or ctx ending while waiting
// for the sync) the writes may nevertheless be visible and may survive: callers
// must treat such an error as "outcome unknown" and fail closed. A sync error is
// returned to every waiter of that round and logged.
//
// UpdateVolatile commits without waiting for the disk (for state whose loss
// is harmless); UpdateLazy too, but it makes sure a round that began after
// its commit follows within a bound it is given, so that such writes do not
// each cost a round of their own while no one else waits.
//
// A sync round makes the write-ahead log (WAL) of the active memtable durable
// with one fdatasync, through a descriptor the store keeps open for it. That
// is enough because Badger puts values below its ValueThreshold (256 KB, far
// above any mfad record) in the WAL and the LSM tree, never in the value log.
// A transaction that writes a larger value marks the value log as possibly
// dirty, and the next round calls Badger's DB.Sync instead, which syncs
// (msync) the active WAL and the active value log file. A round notices
// that Badger moved to a new WAL (the next file number exists, or the file
// it keeps open was deleted after a flush) with a stat or two, and lists the
// directory only then, and at the first round after Open. A memtable (or value
// log file) that was rotated out between a commit and the sync round would
// otherwise only become durable when Badger flushes it to an SST table, which
// happens asynchronously and is not waited for; Badger does not sync a WAL when
// it rotates it. To close that window, every listing fsyncs each
// no-longer-active memtable WAL (*.mem) and value log file (*.vlog) in the
// database directory that was not synced before, and the directory itself
// when a new one appeared. Badger never writes to those files again after
// rotation, and fsync on a separate descriptor also writes back pages Badger
// modified through its memory mapping. A WAL that disappeared was flushed:
// Badger deletes it only after writing the SST (msync) and recording it in the
// fsynced MANIFEST. This relies on Badger's file naming, not on its internals.
// (Syncing protects against power loss and kernel crashes; a crash of the
// process alone never loses a commit, because committed data is already in
// the kernel's page cache.)
//
// Restore is not atomic with respect to crashes: it marks the directory while it
// replaces the content, and Open refuses a directory with an interrupted or
// failed restore (ErrRestoreIncomplete) until RestoreDir has restored a backup
// into it. A Restore that fails after dropping the old content also closes the
// DB rather than serve partial data.
//
// # Time
//
// Options.Now is the clock seen through Txn.Now and used for audit timestamps.
// Entry expiry (PutTTL, audit retention) is Badger's TTL mechanism, which always
// measures against the real wall clock.
//
// # Errors
//
// Update returns the error of its function unchanged. Other sentinels: ErrClosed,
// ErrWrongKey, ErrSchemaTooNew, ErrRestoreIncomplete, ErrBadBackup,
// ErrInsecureKeyFile, ErrBadKeyFile, ErrConflict (retries exhausted) and
// ErrTxnTooBig (a transaction larger than Badger's batch limit). No error or log
// line contains a stored value or key material.
package store
