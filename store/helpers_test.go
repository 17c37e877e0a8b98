package store

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// fixedNow is the clock used by tests that need a stable time.
var fixedNow = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

// testMasterKey returns a deterministic 32-byte master key.
func testMasterKey(seed byte) []byte {
	k := make([]byte, MasterKeySize)
	for i := range k {
		k[i] = seed + byte(i)
	}
	return k
}

// openTestDB opens a store in dir ("" for an in-memory store) with key seed 1
// and closes it when the test ends.
func openTestDB(t testing.TB, dir string) *DB {
	t.Helper()
	return openWith(t, Options{Dir: dir, InMemory: dir == "", MasterKey: testMasterKey(1)})
}

// openWith opens a store with opts (filling in a fixed clock) and closes it
// when the test ends.
func openWith(t testing.TB, opts Options) *DB {
	t.Helper()
	if opts.Now == nil {
		opts.Now = func() time.Time { return fixedNow }
	}
	db, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

// put stores v at key in its own transaction.
func put(t testing.TB, db *DB, key []byte, v any) {
	t.Helper()
	if err := db.Update(context.Background(), func(tx *Txn) error { return tx.Put(key, v) }); err != nil {
		t.Fatalf("Update(put %q): %v", key, err)
	}
}

// get reads the string at key.
func get(t testing.TB, db *DB, key []byte) (string, bool) {
	t.Helper()
	var v string
	var found bool
	err := db.View(func(tx *Txn) error {
		var err error
		found, err = tx.Get(key, &v)
		return err
	})
	if err != nil {
		t.Fatalf("View(get %q): %v", key, err)
	}
	return v, found
}

// dump returns every key and raw value in db, for comparing whole contents.
func dump(t testing.TB, db *DB) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := db.View(func(tx *Txn) error {
		return tx.Scan(nil, false, func(key []byte, decode func(any) error) (bool, error) {
			var v any
			if err := decode(&v); err != nil {
				return false, err
			}
			out[string(key)] = fmt.Sprint(v)
			return true, nil
		})
	})
	if err != nil {
		t.Fatalf("dump: %v", err)
	}
	return out
}

// exists reports whether key exists.
func exists(t testing.TB, db *DB, key []byte) bool {
	t.Helper()
	var found bool
	err := db.View(func(tx *Txn) error {
		var err error
		found, err = tx.Get(key, nil)
		return err
	})
	if err != nil {
		t.Fatalf("View(exists %q): %v", key, err)
	}
	return found
}
