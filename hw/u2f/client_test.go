package u2f_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/flynn/u2f/u2ftoken"

	"github.com/mfad/mfad/hw/u2f"
	"github.com/mfad/mfad/sim"
)

var (
	_ u2ftoken.Device = (*sim.U2FKey)(nil)
	_ u2ftoken.Device = cancelingDevice{}
	_ u2f.Source      = u2f.StaticSource(nil)
	_ u2f.Source      = u2f.HID{}
)

var (
	testApp  = u2f.AppParam("https://login.example.org")
	testChal = u2f.ChallengeParam([]byte(`{"typ":"navigator.id.finishEnrollment"}`))
)

// fakeClock is a clock that only moves when the client sleeps.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps int
	// onSleep, if set, runs before each sleep with the number of sleeps so far.
	onSleep func(n int)
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.sleeps++
	n, hook := c.sleeps, c.onSleep
	c.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
	return nil
}

func (c *fakeClock) Sleeps() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sleeps
}

func newKey(t *testing.T, name string, p sim.U2FPresence) *sim.U2FKey {
	t.Helper()
	k, err := sim.NewU2FKey(sim.U2FKeyOptions{Name: name, Presence: p})
	if err != nil {
		t.Fatalf("NewU2FKey: %v", err)
	}
	return k
}

func source(keys ...*sim.U2FKey) u2f.StaticSource {
	var s u2f.StaticSource
	for _, k := range keys {
		s = append(s, u2f.Key{Path: k.Name(), Name: k.Name(), Dev: k})
	}
	return s
}

func newClient(src u2f.Source, clk *fakeClock) *u2f.Client {
	return &u2f.Client{
		Source:  src,
		Timeout: 2 * time.Second,
		Poll:    200 * time.Millisecond,
		Sleep:   clk.Sleep,
		Now:     clk.Now,
	}
}

// register registers on the keys of src and verifies the response.
func register(t *testing.T, src u2f.Source) (*u2f.Registration, string) {
	t.Helper()
	raw, path, err := newClient(src, newFakeClock()).Register(context.Background(), testApp, testChal)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	reg, err := u2f.VerifyRegistration(raw, testApp, testChal)
	if err != nil {
		t.Fatalf("VerifyRegistration: %v", err)
	}
	return reg, path
}

func TestRegisterThenAuthenticate(t *testing.T) {
	key := newKey(t, "key-a", sim.U2FPresenceAuto)
	src := source(key)
	reg, path := register(t, src)
	if path != "key-a" {
		t.Errorf("key path = %q, want %q", path, "key-a")
	}

	c := newClient(src, newFakeClock())
	handles := [][]byte{[]byte("not a handle of this key, long enough"), reg.KeyHandle}
	var last uint32
	for i := range 3 {
		chal := u2f.ChallengeParam([]byte{byte(i)})
		handle, raw, err := c.Authenticate(context.Background(), testApp, chal, handles)
		if err != nil {
			t.Fatalf("Authenticate #%d: %v", i, err)
		}
		if string(handle) != string(reg.KeyHandle) {
			t.Fatalf("Authenticate #%d used another handle", i)
		}
		if raw[0] != 0x01 {
			t.Errorf("flags = %#x, want 0x01", raw[0])
		}
		a, err := u2f.VerifyAuthentication(raw, reg.PublicKey, testApp, chal, last, false)
		if err != nil {
			t.Fatalf("VerifyAuthentication #%d: %v", i, err)
		}
		if a.Counter <= last || a.Counter != key.Counter() {
			t.Errorf("counter = %d after %d, key counter %d", a.Counter, last, key.Counter())
		}
		last = a.Counter
	}
}

func TestAuthenticateAsksOnlyTheHoldingKey(t *testing.T) {
	first := newKey(t, "first", sim.U2FPresenceNever)
	second := newKey(t, "second", sim.U2FPresenceAuto)

	// Both plugged; only the second is touched, so it registers.
	reg, path := register(t, source(first, second))
	if path != "second" {
		t.Fatalf("registered on %q, want %q", path, "second")
	}
	if first.Counter() != 0 || second.Counter() != 0 {
		t.Fatalf("registration changed counters: %d, %d", first.Counter(), second.Counter())
	}

	firstCalls := first.Calls()
	other := make([]byte, len(reg.KeyHandle))
	handle, raw, err := newClient(source(first, second), newFakeClock()).
		Authenticate(context.Background(), testApp, testChal, [][]byte{other, reg.KeyHandle})
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	if string(handle) != string(reg.KeyHandle) {
		t.Fatal("wrong handle returned")
	}
	if _, err := u2f.VerifyAuthentication(raw, reg.PublicKey, testApp, testChal, 0, false); err != nil {
		t.Fatalf("VerifyAuthentication: %v", err)
	}
	// The first key only saw one check-only request per handle.
	if got := first.Calls() - firstCalls; got != 2 {
		t.Errorf("first key got %d requests, want 2 check-only", got)
	}
	if first.Counter() != 0 {
		t.Errorf("first key signed %d times", first.Counter())
	}
	if second.Counter() != 1 {
		t.Errorf("second key counter = %d, want 1", second.Counter())
	}
}

func TestAuthenticateTwoHoldingKeys(t *testing.T) {
	first := newKey(t, "first", sim.U2FPresenceAuto)
	second := newKey(t, "second", sim.U2FPresenceAuto)
	regFirst, _ := register(t, source(first))
	regSecond, _ := register(t, source(second))
	// Both hold a handle; the user touches the second one only.
	first.SetPresence(sim.U2FPresenceNever)
	second.SetPresence(sim.U2FPresenceAfter(2))

	handle, raw, err := newClient(source(first, second), newFakeClock()).
		Authenticate(context.Background(), testApp, testChal, [][]byte{regFirst.KeyHandle, regSecond.KeyHandle})
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	if string(handle) != string(regSecond.KeyHandle) {
		t.Fatal("returned handle is not the touched key's")
	}
	if _, err := u2f.VerifyAuthentication(raw, regSecond.PublicKey, testApp, testChal, 0, false); err != nil {
		t.Fatalf("VerifyAuthentication: %v", err)
	}
	if first.Counter() != 0 {
		t.Errorf("untouched key signed %d times", first.Counter())
	}
}

func TestPresence(t *testing.T) {
	tests := []struct {
		name       string
		presence   sim.U2FPresence
		touchAt    int // touch the key before this sleep; 0 = never
		wantErr    error
		wantSleeps int
	}{
		{name: "auto", presence: sim.U2FPresenceAuto, wantSleeps: 0},
		{name: "after 3", presence: sim.U2FPresenceAfter(3), wantSleeps: 3},
		{name: "touched", presence: sim.U2FPresenceNever, touchAt: 4, wantSleeps: 4},
		// 2 s of 200 ms polls: 10 sleeps, then the deadline is reached.
		{name: "never", presence: sim.U2FPresenceNever, wantErr: u2f.ErrTimeout, wantSleeps: 10},
	}
	for _, op := range []string{"register", "authenticate"} {
		for _, tt := range tests {
			t.Run(op+"/"+tt.name, func(t *testing.T) {
				key := newKey(t, "key", sim.U2FPresenceAuto)
				src := source(key)
				var handles [][]byte
				if op == "authenticate" {
					reg, _ := register(t, src)
					handles = [][]byte{reg.KeyHandle}
				}
				key.SetPresence(tt.presence)
				clk := newFakeClock()
				start := clk.Now()
				clk.onSleep = func(n int) {
					if n == tt.touchAt {
						key.Touch()
					}
				}
				c := newClient(src, clk)
				var err error
				if op == "register" {
					var raw []byte
					raw, _, err = c.Register(context.Background(), testApp, testChal)
					if err == nil {
						_, err = u2f.VerifyRegistration(raw, testApp, testChal)
					}
				} else {
					_, _, err = c.Authenticate(context.Background(), testApp, testChal, handles)
				}
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if got := clk.Sleeps(); got != tt.wantSleeps {
					t.Errorf("slept %d times, want %d", got, tt.wantSleeps)
				}
				if tt.wantErr == u2f.ErrTimeout {
					if waited := clk.Now().Sub(start); waited != c.Timeout {
						t.Errorf("waited %v of fake time, want %v", waited, c.Timeout)
					}
				}
			})
		}
	}
}

type errSource struct{ err error }

func (s errSource) Keys() ([]u2f.Key, error) { return nil, s.err }

func TestNoKey(t *testing.T) {
	listErr := errors.New("enumeration failed")
	tests := []struct {
		name string
		src  u2f.Source
	}{
		{name: "nil source", src: nil},
		{name: "empty", src: u2f.StaticSource{}},
		{name: "listing error", src: errSource{listErr}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(tt.src, newFakeClock())
			if _, _, err := c.Register(context.Background(), testApp, testChal); !errors.Is(err, u2f.ErrNoKey) {
				t.Errorf("Register err = %v, want ErrNoKey", err)
			}
			_, _, err := c.Authenticate(context.Background(), testApp, testChal, [][]byte{{1, 2, 3}})
			if !errors.Is(err, u2f.ErrNoKey) || errors.Is(err, u2f.ErrUnknownHandle) {
				t.Errorf("Authenticate err = %v, want ErrNoKey only", err)
			}
			if _, ok := tt.src.(errSource); ok && !errors.Is(err, listErr) {
				t.Errorf("Authenticate err = %v, does not wrap the listing error", err)
			}
		})
	}
}

func TestForeignHandles(t *testing.T) {
	owner := newKey(t, "owner", sim.U2FPresenceAuto)
	reg, _ := register(t, source(owner))
	other := newKey(t, "other", sim.U2FPresenceAuto)

	tests := []struct {
		name    string
		handles [][]byte
	}{
		{name: "other key's handle", handles: [][]byte{reg.KeyHandle}},
		{name: "no handles", handles: nil},
		{name: "unframeable handles", handles: [][]byte{{}, make([]byte, 256)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := newClient(source(other), newFakeClock()).
				Authenticate(context.Background(), testApp, testChal, tt.handles)
			if !errors.Is(err, u2f.ErrUnknownHandle) || !errors.Is(err, u2f.ErrNoKey) {
				t.Fatalf("err = %v, want ErrUnknownHandle wrapping ErrNoKey", err)
			}
			if other.Counter() != 0 {
				t.Errorf("foreign key signed")
			}
		})
	}
}

func TestFaultyKeys(t *testing.T) {
	tests := []struct {
		name      string
		fault     sim.U2FFault
		pullAt    int  // inject the fault before this sleep; 0 = before the call
		withGood  bool // a second, working key is plugged too
		wantErrIs error
	}{
		{name: "pulled before", fault: sim.U2FFaultDisconnect, wantErrIs: sim.ErrU2FDisconnected},
		{name: "pulled while waiting", fault: sim.U2FFaultDisconnect, pullAt: 2, wantErrIs: sim.ErrU2FDisconnected},
		{name: "busy", fault: sim.U2FFaultBusy, wantErrIs: sim.ErrU2FBusy},
		{name: "garbage", fault: sim.U2FFaultGarbage},
		{name: "pulled, other works", fault: sim.U2FFaultDisconnect, withGood: true},
		{name: "pulled while waiting, other works", fault: sim.U2FFaultDisconnect, pullAt: 1, withGood: true},
		{name: "garbage, other works", fault: sim.U2FFaultGarbage, withGood: true},
	}
	for _, op := range []string{"register", "authenticate"} {
		for _, tt := range tests {
			t.Run(op+"/"+tt.name, func(t *testing.T) {
				bad := newKey(t, "bad", sim.U2FPresenceAuto)
				good := newKey(t, "good", sim.U2FPresenceAuto)
				var handles [][]byte
				if op == "authenticate" {
					regBad, _ := register(t, source(bad))
					regGood, _ := register(t, source(good))
					handles = [][]byte{regBad.KeyHandle, regGood.KeyHandle}
				}
				keys := []*sim.U2FKey{bad}
				if tt.withGood {
					keys = append(keys, good)
				}
				// Neither key is touched at once, so the client polls.
				bad.SetPresence(sim.U2FPresenceNever)
				good.SetPresence(sim.U2FPresenceAfter(3))
				clk := newFakeClock()
				clk.onSleep = func(n int) {
					if n == tt.pullAt {
						bad.SetFault(tt.fault)
					}
				}
				if tt.pullAt == 0 {
					bad.SetFault(tt.fault)
				}
				c := newClient(source(keys...), clk)
				var (
					path string
					err  error
				)
				if op == "register" {
					_, path, err = c.Register(context.Background(), testApp, testChal)
				} else {
					_, _, err = c.Authenticate(context.Background(), testApp, testChal, handles)
				}
				if tt.withGood {
					if err != nil {
						t.Fatalf("err = %v, want success on the good key", err)
					}
					if op == "register" && path != "good" {
						t.Errorf("registered on %q, want good", path)
					}
					if op == "authenticate" && good.Counter() != 1 {
						t.Errorf("good key counter = %d, want 1", good.Counter())
					}
					return
				}
				if err == nil {
					t.Fatal("no error from a faulty key")
				}
				if errors.Is(err, u2f.ErrTimeout) || errors.Is(err, u2f.ErrNoKey) {
					t.Errorf("err = %v, want a key failure", err)
				}
				if tt.wantErrIs != nil && !errors.Is(err, tt.wantErrIs) {
					t.Errorf("err = %v, want it to wrap %v", err, tt.wantErrIs)
				}
				if clk.Sleeps() > 2 {
					t.Errorf("kept polling a failed key: %d sleeps", clk.Sleeps())
				}
			})
		}
	}
}

// cancelingDevice cancels a context on every message, like a user pressing
// Ctrl-C while the key is asked for a touch.
type cancelingDevice struct {
	u2ftoken.Device
	cancel context.CancelFunc
}

func (d cancelingDevice) Message(apdu []byte) ([]byte, error) {
	d.cancel()
	return d.Device.Message(apdu)
}

func TestContextCancelled(t *testing.T) {
	key := newKey(t, "key", sim.U2FPresenceAuto)
	reg, _ := register(t, source(key))
	key.SetPresence(sim.U2FPresenceNever)
	handles := [][]byte{reg.KeyHandle}

	run := func(t *testing.T, c *u2f.Client, ctx context.Context) {
		t.Helper()
		if _, _, err := c.Register(ctx, testApp, testChal); !errors.Is(err, context.Canceled) {
			t.Errorf("Register err = %v, want context.Canceled", err)
		}
		if _, _, err := c.Authenticate(ctx, testApp, testChal, handles); !errors.Is(err, context.Canceled) {
			t.Errorf("Authenticate err = %v, want context.Canceled", err)
		}
	}

	t.Run("before the call", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		callsBefore := key.Calls()
		run(t, newClient(source(key), newFakeClock()), ctx)
		if key.Calls() != callsBefore {
			t.Errorf("key was asked %d times after cancellation", key.Calls()-callsBefore)
		}
	})
	t.Run("while sleeping", func(t *testing.T) {
		for _, op := range []string{"register", "authenticate"} {
			ctx, cancel := context.WithCancel(context.Background())
			clk := newFakeClock()
			clk.onSleep = func(n int) {
				if n == 2 {
					cancel()
				}
			}
			c := newClient(source(key), clk)
			var err error
			if op == "register" {
				_, _, err = c.Register(ctx, testApp, testChal)
			} else {
				_, _, err = c.Authenticate(ctx, testApp, testChal, handles)
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%s err = %v, want context.Canceled", op, err)
			}
			if clk.Sleeps() != 2 {
				t.Errorf("%s slept %d times, want 2", op, clk.Sleeps())
			}
		}
	})
	t.Run("default sleep", func(t *testing.T) {
		// Timeout and Poll are long: returning at all shows the real sleep
		// honours ctx.
		ctx, cancel := context.WithCancel(context.Background())
		c := &u2f.Client{
			Source:  u2f.StaticSource{{Path: "key", Dev: cancelingDevice{key, cancel}}},
			Timeout: time.Hour,
			Poll:    time.Hour,
		}
		if _, _, err := c.Register(ctx, testApp, testChal); !errors.Is(err, context.Canceled) {
			t.Errorf("Register err = %v, want context.Canceled", err)
		}
	})
}

func TestHIDKeys(t *testing.T) {
	keys, err := u2f.HID{}.Keys()
	for _, k := range keys {
		k.Close()
	}
	if err != nil {
		t.Logf("HID keys: %v (accepted: no usable hidraw devices)", err)
		return
	}
	for i, k := range keys {
		if k.Path == "" || k.Dev == nil {
			t.Errorf("key %d has no path or device: %+v", i, k)
		}
	}
}
