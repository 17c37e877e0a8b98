package store

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func TestKey(t *testing.T) {
	tests := []struct {
		name  string
		ns    string
		parts []string
		want  string
	}{
		{"plain", "user", []string{"alice"}, "user/alice"},
		{"namespace only", "meta", nil, "meta"},
		{"several parts", "totp", []string{"alice", "step"}, "totp/alice/step"},
		{"slash escaped", "user", []string{"a/b"}, "user/a%2Fb"},
		{"nul escaped", "user", []string{"a\x00b"}, "user/a%00b"},
		{"percent escaped", "user", []string{"100%"}, "user/100%25"},
		{"space escaped", "user", []string{"john doe"}, "user/john%20doe"},
		{"non-ascii escaped", "user", []string{"jörg"}, "user/j%C3%B6rg"},
		{"trailing empty part", "user", []string{"alice", ""}, "user/alice/"},
		{"domain user", "user", []string{"alice@EXAMPLE.COM"}, "user/alice@EXAMPLE.COM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(Key(tt.ns, tt.parts...)); got != tt.want {
				t.Errorf("Key(%q, %q) = %q, want %q", tt.ns, tt.parts, got, tt.want)
			}
		})
	}
	if bytes.Equal(Key("u", "a/b"), Key("u", "a", "b")) {
		t.Error(`Key("u", "a/b") equals Key("u", "a", "b")`)
	}
}

// FuzzKey checks that every part round-trips and that no part can introduce a
// separator or a NUL byte.
func FuzzKey(f *testing.F) {
	f.Add("alice", "step")
	f.Add("a/b", "")
	f.Add("\x00/%2F", "%")
	f.Add("jörg", "..")
	f.Fuzz(func(t *testing.T, a, b string) {
		key := Key("ns", a, b)
		if bytes.IndexByte(key, 0) >= 0 {
			t.Fatalf("Key contains NUL: %q", key)
		}
		segs := strings.Split(string(key), "/")
		if len(segs) != 3 {
			t.Fatalf("Key(%q, %q) = %q has %d segments, want 3", a, b, key, len(segs))
		}
		for i, want := range []string{"ns", a, b} {
			got, err := url.PathUnescape(segs[i])
			if err != nil || got != want {
				t.Fatalf("segment %d = %q (unescaped %q, %v), want %q", i, segs[i], got, err, want)
			}
		}
	})
}

func TestOpenRejectsBadMasterKey(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		t.Run(fmt.Sprintf("%d bytes", n), func(t *testing.T) {
			db, err := Open(Options{InMemory: true, MasterKey: make([]byte, n)})
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
		})
	}
}

func TestEncryptionAtRest(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	secretKey := Key("secret", "zebra-unicorn-key-7319")
	secretValue := "distinctive-plaintext-SEED-JBSWY3DPEHPK3PXP"

	db, err := Open(Options{Dir: dir, MasterKey: testMasterKey(1)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	put(t, db, secretKey, secretValue)
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Errorf("database directory mode = %#o, want 0700", perm)
	}
	var scanned int
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		scanned++
		for _, needle := range [][]byte{[]byte(secretValue), secretKey, testMasterKey(1)} {
			if bytes.Contains(data, needle) {
				t.Errorf("%s contains plaintext %q", d.Name(), needle)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if scanned == 0 {
		t.Fatal("no files in the database directory")
	}

	if db, err := Open(Options{Dir: dir, MasterKey: testMasterKey(2)}); !errors.Is(err, ErrWrongKey) {
		if err == nil {
			db.Close()
		}
		t.Fatalf("Open with another key: error = %v, want ErrWrongKey", err)
	}
	db = openTestDB(t, dir)
	if got, _ := get(t, db, secretKey); got != secretValue {
		t.Errorf("after reopening: value = %q, want %q", got, secretValue)
	}
}

func TestUpdateDurableAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(Options{Dir: dir, MasterKey: testMasterKey(1)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		put(t, db, Key("user", fmt.Sprint(i)), fmt.Sprintf("value %d", i))
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTestDB(t, dir)
	for i := range 10 {
		if got, found := get(t, db, Key("user", fmt.Sprint(i))); !found || got != fmt.Sprintf("value %d", i) {
			t.Errorf("key %d = %q, %v after reopen", i, got, found)
		}
	}
}

func TestUpdateFnErrorAborts(t *testing.T) {
	db := openTestDB(t, "")
	errDenied := errors.New("denied")
	wrapped := fmt.Errorf("deciding: %w", errDenied)
	calls := 0
	err := db.Update(context.Background(), func(tx *Txn) error {
		calls++
		if err := tx.Put(Key("user", "alice"), "written"); err != nil {
			return err
		}
		return wrapped
	})
	if err != wrapped {
		t.Errorf("Update error = %v, want fn's error unchanged", err)
	}
	if !errors.Is(err, errDenied) {
		t.Error("errors.Is(err, errDenied) is false")
	}
	if calls != 1 {
		t.Errorf("fn ran %d times, want 1", calls)
	}
	if _, found := get(t, db, Key("user", "alice")); found {
		t.Error("write of an aborted transaction is visible")
	}
	if c := db.Stats().Commits; c != 1 {
		t.Errorf("Commits = %d, want 1 (only the schema written by Open)", c)
	}
}

func TestUpdateCompareAndSwapOneWinner(t *testing.T) {
	db := openTestDB(t, "")
	key := Key("cas", "step")
	put(t, db, key, 0)

	const n = 50
	var wins atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			<-start
			var won bool
			err := db.Update(context.Background(), func(tx *Txn) error {
				won = false // fn may run several times
				var counter int
				if _, err := tx.Get(key, &counter); err != nil {
					return err
				}
				if counter != 0 {
					return nil
				}
				won = true
				return tx.Put(key, 1)
			})
			if err != nil {
				errs <- err
				return
			}
			if won {
				wins.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Update: %v", err)
	}
	if w := wins.Load(); w != 1 {
		t.Errorf("%d goroutines won, want exactly 1", w)
	}
}

func TestUpdateConcurrentIncrements(t *testing.T) {
	db := openTestDB(t, "")
	key := Key("counter", "c")
	const goroutines, each = 32, 20
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for range goroutines {
		wg.Go(func() {
			for range each {
				errs <- db.Update(context.Background(), func(tx *Txn) error {
					var c int
					if _, err := tx.Get(key, &c); err != nil {
						return err
					}
					return tx.Put(key, c+1)
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Update: %v", err)
		}
	}
	var got int
	if err := db.View(func(tx *Txn) error { _, err := tx.Get(key, &got); return err }); err != nil {
		t.Fatal(err)
	}
	if got != goroutines*each {
		t.Errorf("counter = %d, want %d", got, goroutines*each)
	}
}

func TestUpdateReadOnlySkipsSync(t *testing.T) {
	db := openTestDB(t, t.TempDir())
	opened := db.Stats()
	put(t, db, Key("user", "alice"), "x")
	before := db.Stats()
	err := db.Update(context.Background(), func(tx *Txn) error {
		_, err := tx.Get(Key("user", "alice"), nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	after := db.Stats()
	if after.Syncs != before.Syncs || after.Commits != before.Commits {
		t.Errorf("read-only Update changed stats from %+v to %+v", before, after)
	}
	if before.Commits != opened.Commits+1 || before.Syncs != opened.Syncs+1 {
		t.Errorf("one write changed stats from %+v to %+v, want one more commit and sync", opened, before)
	}
}

func TestUpdateHonoursContext(t *testing.T) {
	db := openTestDB(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	err := db.Update(ctx, func(*Txn) error { ran = true; return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Update error = %v, want context.Canceled", err)
	}
	if ran {
		t.Error("fn ran with a cancelled context")
	}
}

func TestTxnTooBig(t *testing.T) {
	db := openTestDB(t, "")
	value := strings.Repeat("v", 1024)
	err := db.Update(context.Background(), func(tx *Txn) error {
		for i := range 100_000 {
			if err := tx.Put(Key("big", fmt.Sprint(i)), value); err != nil {
				return err
			}
		}
		return nil
	})
	if !errors.Is(err, ErrTxnTooBig) {
		t.Fatalf("Update error = %v, want ErrTxnTooBig", err)
	}
	if _, found := get(t, db, Key("big", "0")); found {
		t.Error("part of a too-big transaction was committed")
	}
}

func TestTxnOperations(t *testing.T) {
	db := openTestDB(t, "")
	ctx := context.Background()
	type rec struct {
		Name string `json:"name"`
		N    int    `json:"n"`
	}
	keys := [][]byte{
		Key("user", "alice"),
		Key("user", "alice", "totp"),
		Key("user", "alice", "zz"),
		Key("user", "alicex"),
		Key("user", "bob"),
		Key("userz"),
		[]byte("user/alice/\xff\xff"),
	}
	err := db.Update(ctx, func(tx *Txn) error {
		for i, k := range keys {
			if err := tx.Put(k, rec{Name: hex.EncodeToString(k), N: i}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	scan := func(t *testing.T, prefix []byte, reverse bool, stopAfter int) []string {
		t.Helper()
		var got []string
		err := db.View(func(tx *Txn) error {
			return tx.Scan(prefix, reverse, func(key []byte, decode func(any) error) (bool, error) {
				var r rec
				if err := decode(&r); err != nil {
					return false, err
				}
				if r.Name != hex.EncodeToString(key) {
					return false, fmt.Errorf("value of %q is %+v", key, r)
				}
				got = append(got, string(key))
				return stopAfter == 0 || len(got) < stopAfter, nil
			})
		})
		if err != nil {
			t.Fatalf("Scan: %v", err)
		}
		return got
	}
	children := []string{"user/alice/totp", "user/alice/zz", "user/alice/\xff\xff"}
	tests := []struct {
		name      string
		prefix    []byte
		reverse   bool
		stopAfter int
		want      []string
	}{
		{"forward children", Key("user", "alice", ""), false, 0, children},
		{"reverse children", Key("user", "alice", ""), true, 0, []string{children[2], children[1], children[0]}},
		{"forward stop", Key("user", "alice", ""), false, 1, children[:1]},
		{"reverse stop", Key("user", "alice", ""), true, 2, []string{children[2], children[1]}},
		{"namespace", Key("user", ""), false, 0, []string{"user/alice", "user/alice/totp", "user/alice/zz", "user/alice/\xff\xff", "user/alicex", "user/bob"}},
		{"reverse namespace", Key("user", ""), true, 1, []string{"user/bob"}},
		{"reverse up to an existing successor", []byte("user"), true, 1, []string{"userz"}},
		{"no match", Key("nobody", ""), false, 0, nil},
		{"no match reverse", Key("nobody", ""), true, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := scan(t, tt.prefix, tt.reverse, tt.stopAfter)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("Scan(%q, reverse=%v) = %q, want %q", tt.prefix, tt.reverse, got, tt.want)
			}
		})
	}

	t.Run("get", func(t *testing.T) {
		err := db.View(func(tx *Txn) error {
			var r rec
			found, err := tx.Get(Key("user", "bob"), &r)
			if err != nil || !found || r.N != 4 {
				return fmt.Errorf("Get(bob) = %+v, %v, %v", r, found, err)
			}
			if found, err := tx.Get(Key("user", "carol"), &r); err != nil || found {
				return fmt.Errorf("Get(carol) = %v, %v; want not found", found, err)
			}
			if found, err := tx.Get(Key("user", "bob"), nil); err != nil || !found {
				return fmt.Errorf("Get(bob, nil) = %v, %v", found, err)
			}
			var wrongType []int
			if _, err := tx.Get(Key("user", "bob"), &wrongType); err == nil {
				return errors.New("decoding into the wrong type succeeded")
			}
			if !tx.Now().Equal(fixedNow) {
				return fmt.Errorf("Now() = %v, want the injected clock", tx.Now())
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	})

	t.Run("delete and delete prefix", func(t *testing.T) {
		err := db.Update(ctx, func(tx *Txn) error {
			if err := tx.Delete(Key("user", "bob")); err != nil {
				return err
			}
			if err := tx.Delete(Key("user", "nobody")); err != nil {
				return err
			}
			return tx.DeletePrefix(Key("user", "alice", ""))
		})
		if err != nil {
			t.Fatal(err)
		}
		got := scan(t, []byte("user"), false, 0)
		want := []string{"user/alice", "user/alicex", "userz"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("after deletes: keys = %q, want %q", got, want)
		}
	})

	t.Run("view cannot write", func(t *testing.T) {
		err := db.View(func(tx *Txn) error { return tx.Put(Key("user", "eve"), "x") })
		if err == nil {
			t.Error("Put in View succeeded")
		}
	})
}

func TestPutTTL(t *testing.T) {
	db := openTestDB(t, "")
	const ttl = 36 * time.Hour
	before := time.Now()
	err := db.Update(context.Background(), func(tx *Txn) error {
		if err := tx.PutTTL(Key("login", "a"), "x", ttl); err != nil {
			return err
		}
		if err := tx.PutTTL(Key("login", "b"), "x", 0); err == nil {
			return errors.New("PutTTL with ttl 0 succeeded")
		}
		return nil
	})
	after := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	expires := expiresAt(t, db, Key("login", "a"))
	if lo, hi := uint64(before.Add(ttl).Unix()), uint64(after.Add(ttl).Unix()); expires < lo || expires > hi {
		t.Errorf("ExpiresAt = %d, want within [%d, %d]", expires, lo, hi)
	}
}

// expiresAt returns badger's expiry (Unix seconds) of key.
func expiresAt(t *testing.T, db *DB, key []byte) uint64 {
	t.Helper()
	var exp uint64
	err := db.Badger().View(func(bt *badger.Txn) error {
		item, err := bt.Get(key)
		if err != nil {
			return err
		}
		exp = item.ExpiresAt()
		return nil
	})
	if err != nil {
		t.Fatalf("reading %q: %v", key, err)
	}
	return exp
}

func TestClose(t *testing.T) {
	db, err := Open(Options{Dir: t.TempDir(), MasterKey: testMasterKey(1)})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := db.Update(context.Background(), func(*Txn) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Update after Close = %v, want ErrClosed", err)
	}
	if err := db.View(func(*Txn) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("View after Close = %v, want ErrClosed", err)
	}
	if _, err := db.Audit(AuditQuery{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Audit after Close = %v, want ErrClosed", err)
	}
	if err := db.Backup(&bytes.Buffer{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Backup after Close = %v, want ErrClosed", err)
	}
	if err := db.Restore(bytes.NewReader(nil)); !errors.Is(err, ErrBadBackup) {
		t.Errorf("Restore(empty) after Close = %v, want ErrBadBackup", err)
	}
	if s := db.Stats(); s.Commits != 1 {
		t.Errorf("Stats after Close = %+v, want the schema's commit", s)
	}
}

func TestStats(t *testing.T) {
	db := openTestDB(t, t.TempDir())
	opened := db.Stats()
	if opened.Commits != 1 || opened.Syncs != 1 {
		t.Errorf("after Open: %+v, want the schema's commit and sync", opened)
	}
	for i := range 3 {
		put(t, db, Key("k", fmt.Sprint(i)), i)
	}
	s := db.Stats()
	if s.Commits != 4 || s.Syncs != 4 {
		t.Errorf("after 3 sequential writes: %+v, want 4 commits and 4 syncs", s)
	}
	if s.LSMBytes < 0 || s.VLogBytes < 0 {
		t.Errorf("negative sizes: %+v", s)
	}
}

// A volatile update is visible at once and becomes durable with the next
// sync anyone waits for: here WaitDurable, then a reopen finds it.
func TestUpdateVolatile(t *testing.T) {
	dir := t.TempDir()
	db := openTestDB(t, dir)
	ctx := context.Background()
	if err := db.UpdateVolatile(ctx, func(txn *Txn) error { return txn.Put(Key("login", "a"), "x") }); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := db.View(func(txn *Txn) error { _, err := txn.Get(Key("login", "a"), &got); return err }); err != nil || got != "x" {
		t.Fatalf("read after a volatile update: %q, %v", got, err)
	}
	if err := db.WaitDurable(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.UpdateVolatile(ctx, func(*Txn) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("volatile update on a closed store: %v", err)
	}
	db = openTestDB(t, dir)
	got = ""
	if err := db.View(func(txn *Txn) error { _, err := txn.Get(Key("login", "a"), &got); return err }); err != nil || got != "x" {
		t.Fatalf("after reopening: %q, %v", got, err)
	}
}
