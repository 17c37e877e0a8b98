package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// writeEvents records each event in its own transaction.
func writeEvents(t *testing.T, db *DB, events ...Event) {
	t.Helper()
	for _, ev := range events {
		if err := db.Update(context.Background(), func(tx *Txn) error { return tx.Audit(ev, 24*time.Hour) }); err != nil {
			t.Fatalf("Audit: %v", err)
		}
	}
}

// details returns the Detail fields, which tests use as event names.
func details(events []Event) []string {
	out := make([]string, len(events))
	for i, ev := range events {
		out[i] = ev.Detail
	}
	return out
}

func TestAuditOrderAndSameInstant(t *testing.T) {
	db := openTestDB(t, "")
	at := func(s int) time.Time { return fixedNow.Add(time.Duration(s) * time.Second) }
	// Recorded out of time order.
	writeEvents(t, db,
		Event{Time: at(2), Action: "verify", Result: "ok", Detail: "t2"},
		Event{Time: at(0), Action: "verify", Result: "ok", Detail: "t0"},
		Event{Time: at(1), Action: "verify", Result: "ok", Detail: "t1"},
	)
	// Several events at the clock's single instant, in one transaction.
	err := db.Update(context.Background(), func(tx *Txn) error {
		for i := range 5 {
			if err := tx.Audit(Event{Action: "verify", Result: "fail", Detail: fmt.Sprintf("same%d", i)}, time.Hour); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.Audit(AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	// fixedNow is at(0): the same-instant events sort after t0 in recording order.
	want := []string{"t2", "t1", "same4", "same3", "same2", "same1", "same0", "t0"}
	if fmt.Sprint(details(got)) != fmt.Sprint(want) {
		t.Errorf("events = %v, want %v", details(got), want)
	}
	for _, ev := range got {
		if strings.HasPrefix(ev.Detail, "same") && !ev.Time.Equal(fixedNow) {
			t.Errorf("event %s has time %v, want the injected clock %v", ev.Detail, ev.Time, fixedNow)
		}
	}
}

func TestAuditQuery(t *testing.T) {
	db := openTestDB(t, "")
	at := func(s int) time.Time { return fixedNow.Add(time.Duration(s) * time.Second) }
	writeEvents(t, db,
		Event{Time: at(0), User: "alice", Action: "verify", Result: "ok", Detail: "a0"},
		Event{Time: at(1), User: "bob", Action: "verify", Result: "fail", Detail: "b1"},
		Event{Time: at(2), User: "alice", Action: "totp.enroll", Result: "ok", Detail: "a2"},
		Event{Time: at(3), Action: "config.reload", Result: "ok", CallerUID: -1, Detail: "c3"},
		Event{Time: at(4), User: "alice", Action: "verify", Result: "locked", Detail: "a4"},
	)
	tests := []struct {
		name string
		q    AuditQuery
		want []string
	}{
		{"all", AuditQuery{}, []string{"a4", "c3", "a2", "b1", "a0"}},
		{"user", AuditQuery{User: "alice"}, []string{"a4", "a2", "a0"}},
		{"action", AuditQuery{Action: "verify"}, []string{"a4", "b1", "a0"}},
		{"user and action", AuditQuery{User: "alice", Action: "verify"}, []string{"a4", "a0"}},
		{"since is inclusive", AuditQuery{Since: at(2)}, []string{"a4", "c3", "a2"}},
		{"until is exclusive", AuditQuery{Until: at(2)}, []string{"b1", "a0"}},
		{"window", AuditQuery{Since: at(1), Until: at(4)}, []string{"c3", "a2", "b1"}},
		{"limit", AuditQuery{Limit: 2}, []string{"a4", "c3"}},
		{"limit with filter", AuditQuery{User: "alice", Limit: 2}, []string{"a4", "a2"}},
		{"no match", AuditQuery{User: "mallory"}, nil},
		{"empty window", AuditQuery{Since: at(10)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.Audit(tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(details(got)) != fmt.Sprint(tt.want) {
				t.Errorf("Audit(%+v) = %v, want %v", tt.q, details(got), tt.want)
			}
		})
	}
	t.Run("fields round trip", func(t *testing.T) {
		got, err := db.Audit(AuditQuery{Action: "config.reload"})
		if err != nil || len(got) != 1 {
			t.Fatalf("Audit = %v, %v", got, err)
		}
		want := Event{Time: at(3), Action: "config.reload", Result: "ok", CallerUID: -1, Detail: "c3"}
		if !got[0].Time.Equal(want.Time) {
			t.Errorf("time = %v, want %v", got[0].Time, want.Time)
		}
		got[0].Time = want.Time
		if got[0] != want {
			t.Errorf("event = %+v, want %+v", got[0], want)
		}
	})
}

func TestAuditDefaultLimit(t *testing.T) {
	db := openTestDB(t, "")
	err := db.Update(context.Background(), func(tx *Txn) error {
		for i := range defaultAuditLimit + 5 {
			ev := Event{Time: fixedNow.Add(time.Duration(i) * time.Millisecond), Action: "verify", Result: "ok"}
			if err := tx.Audit(ev, time.Hour); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.Audit(AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != defaultAuditLimit {
		t.Errorf("%d events, want the default limit %d", len(got), defaultAuditLimit)
	}
	if want := fixedNow.Add((defaultAuditLimit + 4) * time.Millisecond); len(got) > 0 && !got[0].Time.Equal(want) {
		t.Errorf("first event at %v, want the newest %v", got[0].Time, want)
	}
}

func TestAuditRetention(t *testing.T) {
	db := openTestDB(t, "")
	tests := []struct {
		name      string
		retention time.Duration
	}{
		{"90 days", 90 * 24 * time.Hour},
		{"1 hour", time.Hour},
		{"forever", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now()
			err := db.Update(context.Background(), func(tx *Txn) error {
				return tx.Audit(Event{Action: "verify", Result: "ok", Detail: tt.name}, tt.retention)
			})
			after := time.Now()
			if err != nil {
				t.Fatal(err)
			}
			var key []byte
			err = db.View(func(tx *Txn) error {
				return tx.Scan(auditPrefix, true, func(k []byte, decode func(any) error) (bool, error) {
					var ev Event
					if err := decode(&ev); err != nil {
						return false, err
					}
					if ev.Detail == tt.name {
						key = k
						return false, nil
					}
					return true, nil
				})
			})
			if err != nil || key == nil {
				t.Fatalf("event not found: %v", err)
			}
			exp := expiresAt(t, db, key)
			if tt.retention == 0 {
				if exp != 0 {
					t.Errorf("ExpiresAt = %d, want 0 (no expiry)", exp)
				}
				return
			}
			if lo, hi := uint64(before.Add(tt.retention).Unix()), uint64(after.Add(tt.retention).Unix()); exp < lo || exp > hi {
				t.Errorf("ExpiresAt = %d, want within [%d, %d]", exp, lo, hi)
			}
		})
	}
}

func TestAuditSharesTheDecisionTransaction(t *testing.T) {
	db := openTestDB(t, "")
	errReject := errors.New("reject")
	err := db.Update(context.Background(), func(tx *Txn) error {
		if err := tx.Put(Key("lock", "alice"), 1); err != nil {
			return err
		}
		if err := tx.Audit(Event{User: "alice", Action: "verify", Result: "locked"}, time.Hour); err != nil {
			return err
		}
		return errReject
	})
	if !errors.Is(err, errReject) {
		t.Fatalf("Update = %v", err)
	}
	got, err := db.Audit(AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("aborted transaction left %d audit events", len(got))
	}
}

func TestAuditKeyFormat(t *testing.T) {
	tm := time.Unix(0, 0x0123456789abcdef)
	if got, want := string(auditTimeKey(tm)), "audit/0123456789abcdef"; got != want {
		t.Errorf("auditTimeKey = %q, want %q", got, want)
	}
	if got, want := string(auditTimeKey(time.Unix(-5, 0))), "audit/0000000000000000"; got != want {
		t.Errorf("auditTimeKey(before 1970) = %q, want %q", got, want)
	}
	db := openTestDB(t, "")
	err := db.Update(context.Background(), func(tx *Txn) error {
		return tx.Audit(Event{Time: tm, Action: "verify", Result: "ok"}, time.Hour)
	})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	err = db.View(func(tx *Txn) error {
		return tx.Scan(auditPrefix, false, func(k []byte, _ func(any) error) (bool, error) {
			keys = append(keys, string(k))
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || len(keys[0]) != len("audit/")+16+8 || keys[0][:22] != "audit/0123456789abcdef" {
		t.Errorf("audit keys = %q, want one audit/<16 hex nanos><8 hex seq>", keys)
	}
}
