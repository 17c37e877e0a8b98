package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Txn is a transaction passed to the functions given to Update and View. It
// wraps a *badger.Txn; values are stored as JSON. It must not be used after the
// function returns or from several goroutines.
type Txn struct {
	bt    *badger.Txn
	db    *DB
	wrote bool
	// toVlog: a value was large enough for Badger's value log.
	toVlog bool
}

// Key builds a namespaced key: the namespace and each part joined by '/', every
// element escaped with url.PathEscape so that any string (including '/', '%'
// and NUL) is a safe part: Key("user", "alice") is "user/alice" and
// Key("user", "a/b") is "user/a%2Fb". Key(ns, parts..., "") ends with '/' and
// is the prefix of exactly the keys below Key(ns, parts...).
func Key(ns string, parts ...string) []byte {
	b := []byte(url.PathEscape(ns))
	for _, p := range parts {
		b = append(b, '/')
		b = append(b, url.PathEscape(p)...)
	}
	return b
}

// Now returns the store's clock reading (Options.Now).
func (t *Txn) Now() time.Time { return t.db.now() }

// Get decodes the JSON value at key into v (v may be nil to test existence)
// and reports whether the key exists.
func (t *Txn) Get(key []byte, v any) (found bool, err error) {
	item, err := t.bt.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("getting %q: %w", key, err)
	}
	if v == nil {
		return true, nil
	}
	if err := item.Value(func(val []byte) error { return decode(val, v) }); err != nil {
		return true, fmt.Errorf("getting %q: %w", key, err)
	}
	return true, nil
}

// Put stores v, JSON-encoded, at key.
func (t *Txn) Put(key []byte, v any) error {
	return t.set(key, v, 0)
}

// PutTTL stores v at key so that it expires after ttl (ttl must be positive).
// Expiry uses the real wall clock, not Options.Now.
func (t *Txn) PutTTL(key []byte, v any, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("putting %q: ttl must be positive", key)
	}
	return t.set(key, v, ttl)
}

func (t *Txn) set(key []byte, v any, ttl time.Duration) error {
	val, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding value for %q: %w", key, err)
	}
	if len(val) >= valueThreshold {
		t.toVlog = true
	}
	e := badger.NewEntry(bytes.Clone(key), val)
	if ttl > 0 {
		e = e.WithTTL(ttl)
	}
	if err := t.bt.SetEntry(e); err != nil {
		return fmt.Errorf("putting %q: %w", key, err)
	}
	t.wrote = true
	return nil
}

// Delete removes key; deleting a missing key is not an error.
func (t *Txn) Delete(key []byte) error {
	if err := t.bt.Delete(bytes.Clone(key)); err != nil {
		return fmt.Errorf("deleting %q: %w", key, err)
	}
	t.wrote = true
	return nil
}

// DeletePrefix removes every key that starts with prefix, in this transaction
// (so a very large prefix can fail with ErrTxnTooBig).
func (t *Txn) DeletePrefix(prefix []byte) error {
	var keys [][]byte
	opts := badger.IteratorOptions{Prefix: prefix}
	it := t.bt.NewIterator(opts)
	for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
		keys = append(keys, it.Item().KeyCopy(nil))
	}
	it.Close()
	for _, k := range keys {
		if err := t.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Scan calls fn for each key that starts with prefix, in key order (reverse
// order when reverse is true), until fn returns false or an error. decode
// JSON-decodes the key's value. The key slice belongs to fn. Writes made by fn
// during the scan are not seen by the scan itself.
func (t *Txn) Scan(prefix []byte, reverse bool, fn func(key []byte, decode func(v any) error) (bool, error)) error {
	it := t.bt.NewIterator(badger.IteratorOptions{Reverse: reverse, Prefix: forwardPrefix(prefix, reverse)})
	defer it.Close()
	if reverse {
		seekLast(it, prefix)
	} else {
		it.Seek(prefix)
	}
	for ; it.ValidForPrefix(prefix); it.Next() {
		item := it.Item()
		key := item.KeyCopy(nil)
		dec := func(v any) error {
			if err := item.Value(func(val []byte) error { return decode(val, v) }); err != nil {
				return fmt.Errorf("reading %q: %w", key, err)
			}
			return nil
		}
		more, err := fn(key, dec)
		if err != nil {
			return err
		}
		if !more {
			return nil
		}
	}
	return nil
}

// forwardPrefix returns prefix for forward iterators, which lets Badger skip
// tables, and nil for reverse ones, whose seeking positions past the prefix.
func forwardPrefix(prefix []byte, reverse bool) []byte {
	if reverse {
		return nil
	}
	return prefix
}

// seekLast positions a reverse iterator on the last key with prefix (or on a
// key without it, if there is none).
func seekLast(it *badger.Iterator, prefix []byte) {
	end := prefixEnd(prefix)
	if end == nil {
		it.Rewind()
		return
	}
	it.Seek(end) // the largest key <= end
	if it.Valid() && bytes.Equal(it.Item().Key(), end) {
		it.Next()
	}
}

// prefixEnd returns the smallest key greater than every key with prefix, or nil
// if there is none (prefix is empty or all 0xff).
func prefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// decode unmarshals a JSON value without letting the value's bytes reach the
// error message.
func decode(val []byte, v any) error {
	err := json.Unmarshal(val, v)
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Errorf("malformed json value at offset %d", syn.Offset)
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) { // its message may quote a number from the value
		return fmt.Errorf("decoding value: field %q does not fit %s", typ.Field, typ.Type)
	}
	if err != nil {
		return fmt.Errorf("decoding value: %w", err)
	}
	return nil
}
