package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Migration upgrades the data from schema version From to From+1. Run executes
// in one transaction that also records the new version, so it must fit into a
// single transaction and may run again if that transaction conflicts.
type Migration struct {
	From int
	Run  func(*Txn) error
}

// builtinMigrations returns the migrations Open runs, ordered by From; there is
// one for every version below SchemaVersion.
func builtinMigrations() []Migration { return nil }

// schemaKey holds the schema version as a JSON number.
var schemaKey = []byte("meta/schema")

// migrate writes the schema version into an empty database, refuses a newer
// one and runs the migrations from the stored version up to db.version.
func (db *DB) migrate() error {
	ctx := context.Background()
	var current int
	err := db.update(ctx, func(t *Txn) error {
		found, err := t.Get(schemaKey, &current)
		if err != nil || found {
			return err
		}
		if !t.isEmpty() {
			return errors.New("database holds data but no schema version")
		}
		current = db.version
		return t.Put(schemaKey, current)
	})
	if err != nil {
		return fmt.Errorf("reading schema version: %w", err)
	}
	if current > db.version {
		return fmt.Errorf("%w: database has version %d, this program knows %d", ErrSchemaTooNew, current, db.version)
	}
	if current < 1 {
		return fmt.Errorf("invalid schema version %d", current)
	}
	for v := current; v < db.version; v++ {
		m, ok := findMigration(db.migs, v)
		if !ok {
			return fmt.Errorf("no migration from schema version %d", v)
		}
		err := db.update(ctx, func(t *Txn) error {
			var stored int
			if _, err := t.Get(schemaKey, &stored); err != nil {
				return err
			}
			if stored != v {
				return fmt.Errorf("schema version changed to %d during migration", stored)
			}
			if err := m.Run(t); err != nil {
				return err
			}
			return t.Put(schemaKey, v+1)
		})
		if err != nil {
			return fmt.Errorf("migrating schema from version %d: %w", v, err)
		}
		db.log.Info("schema migrated", "from", v, "to", v+1)
	}
	return nil
}

func findMigration(migs []Migration, from int) (Migration, bool) {
	for _, m := range migs {
		if m.From == from {
			return m, true
		}
	}
	return Migration{}, false
}

// isEmpty reports whether the database holds no key at all; it reads at most
// one key.
func (t *Txn) isEmpty() bool {
	it := t.bt.NewIterator(badger.IteratorOptions{})
	defer it.Close()
	it.Rewind()
	return !it.Valid()
}

// schemaVersionOf reads the schema version stored in bdb.
func schemaVersionOf(bdb *badger.DB) (version int, found bool, err error) {
	err = bdb.View(func(bt *badger.Txn) error {
		found, err = (&Txn{bt: bt}).Get(schemaKey, &version)
		return err
	})
	return version, found, err
}
