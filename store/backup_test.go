package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

const distinctiveSeed = "TOTPSEED-JBSWY3DPEHPK3PXP-distinctive"

// fillSource writes users, a TTL entry and an audit event, plus bulk data of
// bulk bytes (incompressible, so the backup spans several chunks).
func fillSource(t *testing.T, db *DB, bulk int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	err := db.Update(context.Background(), func(tx *Txn) error {
		if err := tx.Put(Key("user", "alice"), distinctiveSeed); err != nil {
			return err
		}
		if err := tx.Put(Key("user", "bob/with slash"), "bob's record"); err != nil {
			return err
		}
		if err := tx.PutTTL(Key("login", "s1"), "login", time.Hour); err != nil {
			return err
		}
		if err := tx.Audit(Event{User: "alice", Action: "totp.enroll", Result: "ok"}, 24*time.Hour); err != nil {
			return err
		}
		for i := 0; i*1000 < bulk; i++ {
			b := make([]byte, 750) // 1000 bytes once base64-encoded
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
			if err := tx.Put(Key("bulk", fmt.Sprintf("%05d", i)), b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func backupOf(t *testing.T, db *DB) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := db.Backup(&buf); err != nil {
		t.Fatalf("Backup: %v", err)
	}
	return buf.Bytes()
}

func TestBackupRestoreRoundTrip(t *testing.T) {
	src := openTestDB(t, t.TempDir())
	fillSource(t, src, 200_000)
	backup := backupOf(t, src)
	want := dump(t, src)

	if !bytes.HasPrefix(backup, []byte("mfad-backup v1\n")) {
		t.Errorf("backup starts with %q, want the header line", backup[:20])
	}
	for _, needle := range []string{distinctiveSeed, "bob's record", "user/alice", "totp.enroll"} {
		if bytes.Contains(backup, []byte(needle)) {
			t.Errorf("backup contains plaintext %q", needle)
		}
	}
	if again := backupOf(t, src); bytes.Equal(again[:31], backup[:31]) {
		t.Error("two backups share their salt")
	}

	dir := t.TempDir()
	dst := openTestDB(t, dir)
	// A busier history (higher Badger versions) and data that must disappear.
	for i := range 300 {
		put(t, dst, Key("old", fmt.Sprint(i%3)), i)
	}
	if err := dst.Restore(bytes.NewReader(backup)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := dump(t, dst); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("restored content differs: %d keys, want %d", len(got), len(want))
	}
	if _, err := os.Stat(filepath.Join(dir, restoreMarker)); !os.IsNotExist(err) {
		t.Errorf("restore marker left behind: %v", err)
	}
	if exp := expiresAt(t, dst, Key("login", "s1")); exp == 0 {
		t.Error("restored entry lost its expiry")
	}
	events, err := dst.Audit(AuditQuery{User: "alice"})
	if err != nil || len(events) != 1 {
		t.Errorf("restored audit events = %v, %v", events, err)
	}

	// The restored database keeps working and persists.
	put(t, dst, Key("user", "carol"), "after restore")
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	dst = openTestDB(t, dir)
	if got, _ := get(t, dst, Key("user", "alice")); got != distinctiveSeed {
		t.Errorf("after reopen: alice = %q", got)
	}
	if got, _ := get(t, dst, Key("user", "carol")); got != "after restore" {
		t.Errorf("after reopen: carol = %q", got)
	}
}

func TestBackupEmptyDatabaseInMemory(t *testing.T) {
	src := openTestDB(t, "")
	backup := backupOf(t, src)
	dst := openTestDB(t, "")
	put(t, dst, Key("user", "x"), "gone after restore")
	if err := dst.Restore(bytes.NewReader(backup)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := dump(t, dst); len(got) != 1 {
		t.Errorf("restored %d keys, want only the schema: %v", len(got), got)
	}
}

func TestRestoreRejectsBadBackups(t *testing.T) {
	src := openTestDB(t, "")
	fillSource(t, src, 200_000)
	good := backupOf(t, src)
	const head = len(backupHeader) + backupSaltSize
	const chunk = backupChunkSize + chacha20poly1305.Overhead
	if len(good) < head+3*chunk {
		t.Fatalf("backup has %d bytes, want at least 3 full chunks", len(good))
	}
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 1
		return b
	}
	other := openWith(t, Options{InMemory: true, MasterKey: testMasterKey(9)})
	fillSource(t, other, 0)

	tests := []struct {
		name   string
		backup []byte
	}{
		{"empty", nil},
		{"garbage", []byte(strings.Repeat("garbage", 1000))},
		{"header only", good[:len(backupHeader)]},
		{"header and salt only", good[:head]},
		{"wrong header", append([]byte("mfad-backup v2\n"), good[len(backupHeader):]...)},
		{"truncated in the first chunk", good[:head+1000]},
		{"truncated mid-stream", good[:head+chunk+500]},
		{"truncated at a chunk boundary", good[:head+2*chunk]},
		{"final chunk missing its tag", good[:len(good)-1]},
		{"flipped salt", flip(len(backupHeader))},
		{"flipped ciphertext", flip(head + chunk + 100)},
		{"flipped tag", flip(head + chunk - 1)},
		{"flipped last byte", flip(len(good) - 1)},
		{"chunks swapped", append(append(append(bytes.Clone(good[:head]), good[head+chunk:head+2*chunk]...), good[head:head+chunk]...), good[head+2*chunk:]...)},
		{"chunk dropped", append(bytes.Clone(good[:head+chunk]), good[head+2*chunk:]...)},
		{"trailing data", append(bytes.Clone(good), 0)},
		{"trailing empty chunk", append(bytes.Clone(good), make([]byte, chacha20poly1305.Overhead)...)},
		{"another master key", backupOf(t, other)},
	}
	dst := openTestDB(t, t.TempDir())
	put(t, dst, Key("user", "live"), "must survive")
	before := dump(t, dst)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := dst.Restore(bytes.NewReader(tt.backup))
			if !errors.Is(err, ErrBadBackup) {
				t.Fatalf("Restore = %v, want ErrBadBackup", err)
			}
			if strings.Contains(err.Error(), distinctiveSeed) {
				t.Errorf("error %q contains backup content", err)
			}
			if got := dump(t, dst); fmt.Sprint(got) != fmt.Sprint(before) {
				t.Errorf("live content changed: %v", got)
			}
		})
	}
	// The live database still works.
	put(t, dst, Key("user", "after"), "ok")
}

func TestRestoreSchemaVersions(t *testing.T) {
	v2 := openWith(t, Options{InMemory: true, MasterKey: testMasterKey(1), schemaVersion: 2})
	put(t, v2, Key("user", "alice"), "from v2")
	newer := backupOf(t, v2)

	v1 := openTestDB(t, "")
	put(t, v1, Key("user", "alice"), "from v1")
	older := backupOf(t, v1)

	t.Run("newer schema refused", func(t *testing.T) {
		dst := openTestDB(t, "")
		err := dst.Restore(bytes.NewReader(newer))
		if !errors.Is(err, ErrBadBackup) || !errors.Is(err, ErrSchemaTooNew) {
			t.Fatalf("Restore = %v, want ErrBadBackup and ErrSchemaTooNew", err)
		}
		if _, found := get(t, dst, Key("user", "alice")); found {
			t.Error("refused backup was loaded")
		}
	})
	t.Run("older schema migrated", func(t *testing.T) {
		dst := openWith(t, Options{InMemory: true, MasterKey: testMasterKey(1), schemaVersion: 2, migrations: []Migration{{
			From: 1,
			Run:  func(tx *Txn) error { return tx.Put(Key("migrated", "1"), true) },
		}}})
		if err := dst.Restore(bytes.NewReader(older)); err != nil {
			t.Fatalf("Restore: %v", err)
		}
		if v := schemaOf(t, dst); v != 2 {
			t.Errorf("schema version = %d, want 2", v)
		}
		if !exists(t, dst, Key("migrated", "1")) {
			t.Error("migration did not run")
		}
		if got, _ := get(t, dst, Key("user", "alice")); got != "from v1" {
			t.Errorf("alice = %q", got)
		}
	})
	t.Run("older schema without migration refused", func(t *testing.T) {
		dst := openWith(t, Options{InMemory: true, MasterKey: testMasterKey(1), schemaVersion: 2})
		put(t, dst, Key("user", "bob"), "live")
		if err := dst.Restore(bytes.NewReader(older)); !errors.Is(err, ErrBadBackup) {
			t.Fatalf("Restore = %v, want ErrBadBackup", err)
		}
		if got, _ := get(t, dst, Key("user", "bob")); got != "live" {
			t.Error("live content changed")
		}
	})
}

func TestRestoreDirRecoversInterruptedRestore(t *testing.T) {
	src := openTestDB(t, "")
	fillSource(t, src, 10_000)
	backup := backupOf(t, src)
	want := dump(t, src)

	dir := t.TempDir()
	opts := Options{Dir: dir, MasterKey: testMasterKey(1)}
	db, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	put(t, db, Key("user", "half-restored"), "partial")
	if err := db.setRestoreMarker(); err != nil { // as if Restore died midway
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err := Open(opts); !errors.Is(err, ErrRestoreIncomplete) {
		if err == nil {
			db.Close()
		}
		t.Fatalf("Open = %v, want ErrRestoreIncomplete", err)
	}

	if err := RestoreDir(opts, bytes.NewReader(backup[:len(backup)-5])); !errors.Is(err, ErrBadBackup) {
		t.Fatalf("RestoreDir(truncated) = %v, want ErrBadBackup", err)
	}
	if _, err := os.Stat(filepath.Join(dir, restoreMarker)); err != nil {
		t.Errorf("a rejected backup removed the restore marker: %v", err)
	}
	if err := RestoreDir(opts, bytes.NewReader(backup)); err != nil {
		t.Fatalf("RestoreDir: %v", err)
	}
	db = openTestDB(t, dir)
	if got := dump(t, db); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("restored content differs: %d keys, want %d", len(got), len(want))
	}
	if err := RestoreDir(Options{Dir: t.TempDir(), MasterKey: testMasterKey(1), InMemory: true}, bytes.NewReader(backup)); err == nil {
		t.Error("RestoreDir in memory succeeded")
	}
}

// FuzzRestoreStream feeds arbitrary bytes after a valid header: decryption
// must fail with ErrBadBackup and never panic.
func FuzzRestoreStream(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, 16))
	f.Add(make([]byte, 100))
	f.Add(bytes.Repeat([]byte{0xff}, backupChunkSize+chacha20poly1305.Overhead+1))
	master := testMasterKey(1)
	salt := make([]byte, backupSaltSize)
	aead, err := backupAEAD(master, salt)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := io.ReadAll(newOpenReader(data, aead))
		if !errors.Is(err, ErrBadBackup) {
			t.Fatalf("reading %d random bytes: %v, want ErrBadBackup", len(data), err)
		}
	})
}
