package policy

import (
	"github.com/mfad/mfad/config"
	"slices"
	"testing"
	"time"
)

func TestDecideOrder(t *testing.T) {
	def := config.DefaultPolicy(config.Lockout{})
	tests := []struct {
		name    string
		methods []Method
		want    []Method
		def     Method
	}{
		{"strongest first", []Method{MethodRecovery, MethodSMS, MethodTOTP, MethodU2F}, []Method{MethodU2F, MethodTOTP, MethodSMS, MethodRecovery}, MethodU2F},
		{"duplicates collapse", []Method{MethodTOTP, MethodTOTP, MethodRecovery}, []Method{MethodTOTP, MethodRecovery}, MethodTOTP},
		{"recovery only", []Method{MethodRecovery}, []Method{MethodRecovery}, MethodRecovery},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.methods)
			d := Decide(LoginInput{Policy: def, Enrolled: true, Methods: in})
			if d.Decision != Challenge || !slices.Equal(d.Methods, tc.want) || d.Default != tc.def {
				t.Fatalf("Decide(%v) = %+v, want challenge %v default %s", tc.methods, d, tc.want, tc.def)
			}
			if !slices.Equal(in, tc.methods) {
				t.Fatalf("Decide modified its input")
			}
		})
	}
	// The decoy list must not be shared with callers.
	d := Decide(LoginInput{Policy: def})
	d.Methods[0] = "x"
	if DecoyMethods[0] != MethodTOTP {
		t.Fatal("Decide returned the DecoyMethods slice itself")
	}
}

func TestLockout(t *testing.T) {
	l := Lockout{MaxFailures: 3, Window: 10 * time.Minute, Duration: 15 * time.Minute}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var st FailState
	steps := []struct {
		at         time.Duration
		wantLocked bool
		wantLeft   int
	}{
		{0, false, 2},
		{time.Minute, false, 1},
		{2 * time.Minute, true, 0}, // third failure locks
	}
	for i, s := range steps {
		locked := l.Fail(&st, t0.Add(s.at))
		if locked != s.wantLocked || l.AttemptsLeft(st, t0.Add(s.at)) != s.wantLeft {
			t.Fatalf("step %d: locked=%v left=%d, want %v %d", i, locked, l.AttemptsLeft(st, t0.Add(s.at)), s.wantLocked, s.wantLeft)
		}
	}
	if locked, retry := l.Locked(st, t0.Add(3*time.Minute)); !locked || retry != 14*time.Minute {
		t.Fatalf("Locked = %v %v, want locked for 14m", locked, retry)
	}
	if r := l.Retain(st, t0.Add(3*time.Minute)); r != consecutiveMemory-time.Minute {
		t.Fatalf("Retain = %v", r)
	}
	// After the lockout a failure starts a new window.
	after := t0.Add(2*time.Minute + 15*time.Minute)
	if locked, _ := l.Locked(st, after); locked {
		t.Fatal("still locked after the duration")
	}
	if l.AttemptsLeft(st, after) != 3 {
		t.Fatalf("attempts after lockout = %d, want 3", l.AttemptsLeft(st, after))
	}
	if l.Fail(&st, after) || st.Count != 1 {
		t.Fatalf("first failure after lockout: %+v", st)
	}
	// Failures outside the window do not add up.
	st = FailState{}
	l.Fail(&st, t0)
	l.Fail(&st, t0.Add(time.Minute))
	if l.Fail(&st, t0.Add(11*time.Minute)) || st.Count != 1 {
		t.Fatalf("failure after the window: %+v", st)
	}
	if Rank("bogus") != len(strength) {
		t.Fatal("unknown methods must rank last")
	}
}
