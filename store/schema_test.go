package store

import (
	"context"
	"errors"
	"testing"
)

// schemaOf reads the stored schema version.
func schemaOf(t *testing.T, db *DB) int {
	t.Helper()
	v, found, err := schemaVersionOf(db.Badger())
	if err != nil || !found {
		t.Fatalf("schema version: found %v, err %v", found, err)
	}
	return v
}

func TestSchemaNewDatabase(t *testing.T) {
	if SchemaVersion != 1 {
		t.Fatalf("SchemaVersion = %d, want 1", SchemaVersion)
	}
	for _, dir := range []string{"", t.TempDir()} {
		t.Run("inmemory="+boolString(dir == ""), func(t *testing.T) {
			db := openTestDB(t, dir)
			if v := schemaOf(t, db); v != SchemaVersion {
				t.Errorf("schema version = %d, want %d", v, SchemaVersion)
			}
		})
	}
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func TestSchemaMigrations(t *testing.T) {
	dir := t.TempDir()
	key := testMasterKey(1)
	db, err := Open(Options{Dir: dir, MasterKey: key})
	if err != nil {
		t.Fatal(err)
	}
	put(t, db, Key("user", "alice"), "v1 record")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	runs := 0
	migrations := []Migration{{From: 1, Run: func(tx *Txn) error {
		runs++
		var old string
		if _, err := tx.Get(Key("user", "alice"), &old); err != nil {
			return err
		}
		return tx.Put(Key("user", "alice"), "migrated "+old)
	}}}
	openV2 := func() (*DB, error) {
		return Open(Options{Dir: dir, MasterKey: key, schemaVersion: 2, migrations: migrations})
	}

	db, err = openV2()
	if err != nil {
		t.Fatalf("Open with migration: %v", err)
	}
	if v := schemaOf(t, db); v != 2 {
		t.Errorf("schema version after migration = %d, want 2", v)
	}
	if got, _ := get(t, db, Key("user", "alice")); got != "migrated v1 record" {
		t.Errorf("record after migration = %q", got)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if runs != 1 {
		t.Fatalf("migration ran %d times, want 1", runs)
	}

	t.Run("does not run again", func(t *testing.T) {
		db, err := openV2()
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if runs != 1 {
			t.Errorf("migration ran %d times in total, want 1", runs)
		}
	})
	t.Run("newer schema refused", func(t *testing.T) {
		db, err := Open(Options{Dir: dir, MasterKey: key})
		if !errors.Is(err, ErrSchemaTooNew) {
			if err == nil {
				db.Close()
			}
			t.Fatalf("Open of a version 2 database = %v, want ErrSchemaTooNew", err)
		}
	})
	t.Run("missing migration", func(t *testing.T) {
		db, err := Open(Options{Dir: dir, MasterKey: key, schemaVersion: 3, migrations: migrations})
		if err == nil {
			db.Close()
			t.Fatal("Open without a migration from version 2 succeeded")
		}
	})
}

func TestSchemaFailedMigrationKeepsVersion(t *testing.T) {
	dir := t.TempDir()
	db := openTestDB(t, dir)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	errBroken := errors.New("broken migration")
	_, err := Open(Options{Dir: dir, MasterKey: testMasterKey(1), schemaVersion: 2, migrations: []Migration{{
		From: 1,
		Run: func(tx *Txn) error {
			if err := tx.Put(Key("half", "done"), 1); err != nil {
				return err
			}
			return errBroken
		},
	}}})
	if !errors.Is(err, errBroken) {
		t.Fatalf("Open = %v, want the migration's error", err)
	}
	db = openTestDB(t, dir)
	if v := schemaOf(t, db); v != 1 {
		t.Errorf("schema version = %d, want 1", v)
	}
	if _, found := get(t, db, Key("half", "done")); found {
		t.Error("a failed migration left writes behind")
	}
}

func TestSchemaDataWithoutVersionRefused(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(Options{Dir: dir, MasterKey: testMasterKey(1)})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(context.Background(), func(tx *Txn) error {
		if err := tx.Delete(schemaKey); err != nil {
			return err
		}
		return tx.Put(Key("user", "alice"), "x")
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err := Open(Options{Dir: dir, MasterKey: testMasterKey(1)}); err == nil {
		db.Close()
		t.Fatal("Open of data without a schema version succeeded")
	}
}
