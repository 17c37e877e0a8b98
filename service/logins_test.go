package service

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestLoginTable(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	rec := func(id string, created time.Time) loginRecord {
		return loginRecord{ID: id, User: "pat", Created: created, Expires: created.Add(2 * time.Minute)}
	}
	var lt loginTable
	lt.add(rec("a", t0), t0)
	lt.add(rec("b", t0.Add(time.Minute)), t0.Add(time.Minute))

	if r, ok := lt.get("a", t0.Add(time.Second)); !ok || r.User != "pat" {
		t.Fatalf("get a = %+v, %v", r, ok)
	}
	if _, ok := lt.get("nope", t0); ok {
		t.Fatal("an unknown login was found")
	}
	if _, ok := lt.get("a", t0.Add(2*time.Minute)); ok {
		t.Fatal("a login was found at its expiry")
	}

	// One verification at a time; a failed one leaves the login usable,
	// a successful one ends it.
	_, end, err := lt.claim("b", t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := lt.claim("b", t0.Add(time.Minute)); !errors.Is(err, ErrConflict) {
		t.Fatalf("second claim = %v, want ErrConflict", err)
	}
	end(false)
	_, end, err = lt.claim("b", t0.Add(time.Minute))
	if err != nil {
		t.Fatalf("claim after a failed verification: %v", err)
	}
	end(true)
	if _, _, err := lt.claim("b", t0.Add(time.Minute)); !errors.Is(err, ErrLoginExpired) {
		t.Fatalf("claim after success = %v, want ErrLoginExpired", err)
	}
	if _, _, err := lt.claim("a", t0.Add(3*time.Minute)); !errors.Is(err, ErrLoginExpired) {
		t.Fatalf("claim of an expired login = %v, want ErrLoginExpired", err)
	}

	// Adding sweeps expired logins out.
	lt.add(rec("c", t0.Add(5*time.Minute)), t0.Add(5*time.Minute))
	if n := lt.len(); n != 1 {
		t.Fatalf("%d logins held after the sweep, want 1", n)
	}
}

func TestLoginTableCap(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	var lt loginTable
	for i := range maxLogins + 10 {
		lt.add(loginRecord{ID: fmt.Sprint(i), Created: t0, Expires: t0.Add(time.Hour)}, t0)
	}
	if n := lt.len(); n != maxLogins {
		t.Fatalf("%d logins held, want the cap %d", n, maxLogins)
	}
	// The oldest went first.
	if _, ok := lt.get("9", t0); ok {
		t.Error("login 9 survived; the oldest should be dropped first")
	}
	if _, ok := lt.get("10", t0); !ok {
		t.Error("login 10 was dropped")
	}
	if _, ok := lt.get(fmt.Sprint(maxLogins+9), t0); !ok {
		t.Error("the newest login was dropped")
	}
	// A login under verification is not dropped from under it.
	_, end, err := lt.claim("10", t0)
	if err != nil {
		t.Fatal(err)
	}
	lt.add(loginRecord{ID: "new", Created: t0, Expires: t0.Add(time.Hour)}, t0)
	if _, ok := lt.get("10", t0); !ok {
		t.Error("a login under verification was dropped")
	}
	if n := lt.len(); n != maxLogins {
		t.Errorf("%d logins held with one under verification, want the cap %d", n, maxLogins)
	}
	if _, ok := lt.get("11", t0); ok {
		t.Error("the oldest login not under verification survived")
	}
	end(false)
	if len(lt.order)-lt.head != lt.len() {
		t.Errorf("order holds %d ids for %d logins", len(lt.order)-lt.head, lt.len())
	}
}
