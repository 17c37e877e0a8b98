package store

import (
	"bytes"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Event is one audit log record. Detail must never hold a secret or a code.
type Event struct {
	Time      time.Time `json:"time"`
	User      string    `json:"user,omitempty"`
	Action    string    `json:"action"` // e.g. "verify", "totp.enroll", "recovery.generate", "user.delete", "config.reload"
	Result    string    `json:"result"` // e.g. "ok", "fail", "locked", "replay"
	Method    string    `json:"method,omitempty"`
	CallerUID int       `json:"caller_uid"` // -1 when internal
	Service   string    `json:"service,omitempty"`
	RHost     string    `json:"rhost,omitempty"`
	Detail    string    `json:"detail,omitempty"`
}

// AuditQuery selects audit events. Zero fields match everything: events with
// Since <= Time < Until, and User and Action equal to the given ones. Limit 0
// means 1000.
type AuditQuery struct {
	User, Action string
	Since, Until time.Time
	Limit        int
}

// defaultAuditLimit is the number of events Audit returns when Limit is 0.
const defaultAuditLimit = 1000

// auditPrefix is the namespace of audit events.
var auditPrefix = []byte("audit/")

// Audit records ev in this transaction, so it becomes durable exactly when the
// decision it describes does. A zero ev.Time is set to Txn.Now. The event
// expires after retention (never when retention <= 0), measured by Badger on
// the wall clock. Keys sort by time, and events at the same instant get
// distinct keys in the order they were recorded.
func (t *Txn) Audit(ev Event, retention time.Duration) error {
	if ev.Time.IsZero() {
		ev.Time = t.Now()
	}
	key := fmt.Appendf(auditTimeKey(ev.Time), "%08x", t.db.auditSeq.Add(1))
	if retention <= 0 {
		return t.Put(key, ev)
	}
	return t.PutTTL(key, ev, retention)
}

// auditTimeKey is the prefix of the keys of events at time tm: "audit/" and 16
// hex digits of the Unix nanoseconds (times before 1970 count as 1970).
func auditTimeKey(tm time.Time) []byte {
	return fmt.Appendf(bytes.Clone(auditPrefix), "%016x", uint64(max(tm.UnixNano(), 0)))
}

// Audit returns the events matching q, newest first. Filtering by user or
// action reads every event in the time range.
func (db *DB) Audit(q AuditQuery) ([]Event, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = defaultAuditLimit
	}
	var events []Event
	err := db.View(func(t *Txn) error {
		it := t.bt.NewIterator(badger.IteratorOptions{Reverse: true})
		defer it.Close()
		if q.Until.IsZero() {
			seekLast(it, auditPrefix)
		} else {
			it.Seek(auditTimeKey(q.Until)) // the last key before Until
		}
		var since []byte
		if !q.Since.IsZero() {
			since = auditTimeKey(q.Since)
		}
		for ; it.ValidForPrefix(auditPrefix) && len(events) < limit; it.Next() {
			item := it.Item()
			if since != nil && bytes.Compare(item.Key(), since) < 0 {
				break
			}
			var ev Event
			if err := item.Value(func(val []byte) error { return decode(val, &ev) }); err != nil {
				return fmt.Errorf("reading audit event %q: %w", item.Key(), err)
			}
			if (q.User == "" || ev.User == q.User) && (q.Action == "" || ev.Action == q.Action) {
				events = append(events, ev)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("querying audit log: %w", err)
	}
	return events, nil
}
