package store

import (
	"bufio"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/crypto/chacha20poly1305"
)

// ErrBadBackup is returned by Restore for a stream that is not a complete,
// authentic mfad backup made with the same master key, or whose schema is
// newer than this program supports.
var ErrBadBackup = errors.New("invalid backup")

// Backup file format: the header line, a 16-byte random salt, then Badger's
// backup stream encrypted with ChaCha20-Poly1305 in the STREAM construction
// (as in age): 64 KiB plaintext chunks, each sealed with the nonce
// 11-byte big-endian chunk counter || last-chunk flag (1 on the final chunk).
// The key is HKDF-SHA256(DeriveKey(master, "mfad backup v1"), salt). Only the
// final chunk may be short and only an empty stream has an empty chunk, so
// truncation, reordering, tampering and trailing data are all detected.
const (
	backupHeader    = "mfad-backup v1\n"
	backupSaltSize  = 16
	backupChunkSize = 64 << 10
	backupKeyLabel  = "mfad backup v1"
	// restorePending bounds the batches Badger's Load keeps in flight.
	restorePending = 4
)

// Backup writes an encrypted backup of a consistent snapshot of the database
// to w. It may run concurrently with other operations. Syncing w is up to the
// caller.
func (db *DB) Backup(w io.Writer) error {
	leave, err := db.enter()
	if err != nil {
		return err
	}
	defer leave()

	salt := make([]byte, backupSaltSize)
	if _, err := io.ReadFull(db.rand, salt); err != nil {
		return fmt.Errorf("backup: generating salt: %w", err)
	}
	aead, err := backupAEAD(db.masterKey, salt)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if _, err := io.WriteString(w, backupHeader); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if _, err := w.Write(salt); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	sw := &sealWriter{w: w, aead: aead, buf: make([]byte, 0, backupChunkSize)}
	if _, err := db.bdb.Backup(sw, 0); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := sw.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// Restore replaces the whole database content with the backup read from r. It
// first decrypts and loads the entire backup into a temporary in-memory
// database; a corrupt, truncated or foreign backup, or one with a newer schema,
// returns an error matching ErrBadBackup and leaves the database untouched.
// Only then does it drop all data, load the backup, make it durable and run
// migrations. Other operations wait while Restore runs. If Restore fails after
// the old content was dropped, it closes the DB; then, as after a crash during
// Restore, Open refuses the directory (ErrRestoreIncomplete) until RestoreDir
// succeeds.
func (db *DB) Restore(r io.Reader) error {
	tmp, err := db.loadBackup(r)
	if err != nil {
		return err
	}
	defer tmp.Close()

	db.gate.Lock()
	defer db.gate.Unlock()
	if db.closed {
		return ErrClosed
	}
	if err := db.setRestoreMarker(); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := db.replaceContent(tmp); err != nil {
		// Serving partial data could let users skip their second factor:
		// close, and leave the marker so that Open refuses the directory.
		db.log.Error("restore failed, store closed", "err", err)
		if cerr := db.closeLocked(); cerr != nil {
			db.log.Error("closing store after failed restore", "err", cerr)
		}
		return fmt.Errorf("restore: %w (store closed)", err)
	}
	if err := db.clearRestoreMarker(); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	db.log.Info("database restored")
	return nil
}

// RestoreDir restores the backup read from r into the store directory
// opts.Dir, which must not be open. Unlike DB.Restore it also accepts a
// directory left behind by an interrupted restore (ErrRestoreIncomplete) or
// one that Open refuses for other reasons, except a different master key. The
// backup is validated first, exactly as by DB.Restore; migrations run at the end.
func RestoreDir(opts Options, r io.Reader) error {
	if opts.InMemory {
		return errors.New("restore: RestoreDir needs a directory")
	}
	db, err := newDB(opts)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	tmp, err := db.loadBackup(r)
	if err != nil {
		return err
	}
	defer tmp.Close()
	bdb, err := openBadger(db.dir, db.masterKey, db.log)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	db.bdb = bdb
	err = db.setRestoreMarker()
	if err == nil {
		err = bdb.DropAll()
	}
	if err == nil {
		err = copyBadger(tmp, bdb)
	}
	if err == nil {
		err = bdb.Sync()
	}
	// Close flushes the memtables into synced tables.
	if cerr := bdb.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = db.clearRestoreMarker()
	}
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	// Run migrations and check the result the normal way.
	restored, err := Open(opts)
	if err != nil {
		return fmt.Errorf("restore: reopening: %w", err)
	}
	return restored.Close()
}

// replaceContent drops all data, copies tmp's content in, makes it durable and
// runs migrations.
func (db *DB) replaceContent(tmp *badger.DB) error {
	if err := db.bdb.DropAll(); err != nil {
		return fmt.Errorf("dropping data: %w", err)
	}
	if err := copyBadger(tmp, db.bdb); err != nil {
		return fmt.Errorf("loading data: %w", err)
	}
	db.vlogMaybeDirty.Store(true) // Load may have written the value log
	if err := db.syncRound(); err != nil {
		return fmt.Errorf("syncing: %w", err)
	}
	return db.migrate()
}

// loadBackup decrypts the backup from r into a new in-memory Badger database
// and checks its schema version.
func (db *DB) loadBackup(r io.Reader) (*badger.DB, error) {
	br := bufio.NewReaderSize(r, backupChunkSize+chacha20poly1305.Overhead)
	head := make([]byte, len(backupHeader)+backupSaltSize)
	if _, err := io.ReadFull(br, head); err != nil {
		return nil, fmt.Errorf("%w: short header", ErrBadBackup)
	}
	if string(head[:len(backupHeader)]) != backupHeader {
		return nil, fmt.Errorf("%w: not an mfad backup", ErrBadBackup)
	}
	aead, err := backupAEAD(db.masterKey, head[len(backupHeader):])
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	tmp, err := openBadger("", db.masterKey, db.log)
	if err != nil {
		return nil, fmt.Errorf("restore: scratch database: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
		}
	}()
	or := &openReader{r: br, aead: aead, enc: make([]byte, backupChunkSize+chacha20poly1305.Overhead)}
	if err := tmp.Load(or, restorePending); err != nil {
		if errors.Is(err, ErrBadBackup) {
			return nil, err
		}
		if or.err != nil { // an I/O error of r, passed through by Load
			return nil, fmt.Errorf("restore: reading backup: %w", err)
		}
		return nil, fmt.Errorf("%w: %w", ErrBadBackup, err)
	}
	version, found, err := schemaVersionOf(tmp)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: reading schema version: %w", ErrBadBackup, err)
	case !found:
		return nil, fmt.Errorf("%w: no schema version", ErrBadBackup)
	case version > db.version:
		return nil, fmt.Errorf("%w: %w: backup has version %d, this program knows %d",
			ErrBadBackup, ErrSchemaTooNew, version, db.version)
	case version < 1:
		return nil, fmt.Errorf("%w: invalid schema version %d", ErrBadBackup, version)
	}
	for v := version; v < db.version; v++ {
		if _, ok := findMigration(db.migs, v); !ok {
			return nil, fmt.Errorf("%w: no migration from schema version %d", ErrBadBackup, v)
		}
	}
	ok = true
	return tmp, nil
}

// copyBadger copies every entry of src into dst through Badger's backup format.
func copyBadger(src, dst *badger.DB) error {
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err := src.Backup(pw, 0)
		pw.CloseWithError(err)
	}()
	err := dst.Load(pr, restorePending)
	pr.CloseWithError(errors.New("load ended")) // unblocks the writer if Load failed early
	<-done
	return err
}

func (db *DB) setRestoreMarker() error {
	if db.dir == "" {
		return nil
	}
	f, err := os.OpenFile(filepath.Join(db.dir, restoreMarker), os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("marking restore: %w", err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(db.dir)
	}
	if err != nil {
		return fmt.Errorf("marking restore: %w", err)
	}
	return nil
}

func (db *DB) clearRestoreMarker() error {
	if db.dir == "" {
		return nil
	}
	if err := os.Remove(filepath.Join(db.dir, restoreMarker)); err != nil {
		return fmt.Errorf("unmarking restore: %w", err)
	}
	if err := syncDir(db.dir); err != nil {
		return fmt.Errorf("unmarking restore: %w", err)
	}
	return nil
}

// backupAEAD returns the cipher for a backup with the given salt.
func backupAEAD(master, salt []byte) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, DeriveKey(master, backupKeyLabel), salt, backupKeyLabel+" stream", chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("deriving backup key: %w", err)
	}
	return chacha20poly1305.New(key)
}

// chunkNonce is the STREAM nonce: 11-byte big-endian counter, then the flag.
func chunkNonce(counter uint64, last bool) []byte {
	nonce := make([]byte, chacha20poly1305.NonceSize)
	binary.BigEndian.PutUint64(nonce[3:11], counter)
	if last {
		nonce[11] = 1
	}
	return nonce
}

// sealWriter encrypts what is written to it in chunks; Close seals the final
// chunk. A full chunk is sealed only when more data follows, because the final
// chunk carries the last-chunk flag.
type sealWriter struct {
	w       io.Writer
	aead    cipher.AEAD
	buf     []byte
	counter uint64
}

func (s *sealWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if len(s.buf) == backupChunkSize {
			if err := s.seal(false); err != nil {
				return n, err
			}
		}
		c := copy(s.buf[len(s.buf):backupChunkSize], p)
		s.buf = s.buf[:len(s.buf)+c]
		p = p[c:]
		n += c
	}
	return n, nil
}

// Close writes the final chunk; it does not close the underlying writer.
func (s *sealWriter) Close() error { return s.seal(true) }

func (s *sealWriter) seal(last bool) error {
	out := s.aead.Seal(nil, chunkNonce(s.counter, last), s.buf, nil)
	s.counter++
	s.buf = s.buf[:0]
	_, err := s.w.Write(out)
	return err
}

// openReader decrypts a stream written by sealWriter. It returns io.EOF only
// after the authentic final chunk; everything else that is wrong with the
// stream is an error matching ErrBadBackup.
type openReader struct {
	r       *bufio.Reader
	aead    cipher.AEAD
	enc     []byte // chunk buffer
	plain   []byte // decrypted bytes not yet returned
	counter uint64
	done    bool  // the final chunk was read
	err     error // an I/O error of r
}

func (o *openReader) Read(p []byte) (int, error) {
	for len(o.plain) == 0 {
		if o.done {
			return 0, io.EOF
		}
		if err := o.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, o.plain)
	o.plain = o.plain[n:]
	return n, nil
}

// next reads and opens the next chunk.
func (o *openReader) next() error {
	n, err := io.ReadFull(o.r, o.enc)
	last := false
	switch {
	case err == nil: // a full chunk: the final one if nothing follows
		if _, err := o.r.Peek(1); errors.Is(err, io.EOF) {
			last = true
		} else if err != nil {
			o.err = err
			return err
		}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		last = true
	default:
		o.err = err
		return err
	}
	if n < chacha20poly1305.Overhead {
		return fmt.Errorf("%w: truncated", ErrBadBackup)
	}
	if last && n == chacha20poly1305.Overhead && o.counter != 0 {
		return fmt.Errorf("%w: empty final chunk", ErrBadBackup)
	}
	plain, err := o.aead.Open(o.enc[:0], chunkNonce(o.counter, last), o.enc[:n], nil)
	if err != nil {
		return fmt.Errorf("%w: chunk %d failed authentication (truncated, modified or another key)", ErrBadBackup, o.counter)
	}
	o.counter++
	o.plain = plain
	o.done = last
	return nil
}
