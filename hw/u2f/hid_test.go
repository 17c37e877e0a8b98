package u2f

import (
	"errors"
	"testing"
	"time"
)

// fakeHID answers with the queued errors, then with ok.
type fakeHID struct {
	errs  []error
	calls int
}

func (f *fakeHID) Message([]byte) ([]byte, error) {
	f.calls++
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return nil, err
	}
	return []byte{0x90, 0x00}, nil
}

func (f *fakeHID) Wink() error { return nil }

func TestRetryingHIDDevice(t *testing.T) {
	busy := errors.New("u2fhid: received error from device: channel busy")
	timeout := errors.New("u2fhid: error reading response, read timed out")
	closed := errors.New("u2fhid: error reading response, device closed")
	tests := []struct {
		name      string
		errs      []error
		wantErr   error
		wantCalls int
	}{
		{"ok at once", nil, nil, 1},
		{"busy twice then ok", []error{busy, busy}, nil, 3},
		{"read timeout then ok", []error{timeout}, nil, 2},
		{"busy for good", []error{busy, busy, busy, busy, busy}, busy, 4},
		{"pulled key is not retried", []error{closed}, closed, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeHID{errs: tc.errs}
			var slept time.Duration
			r := &retrying{dev: f, sleep: func(d time.Duration) { slept += d }}
			_, err := r.Message([]byte{0, 3, 0, 0})
			if !errors.Is(err, tc.wantErr) || f.calls != tc.wantCalls {
				t.Fatalf("err %v after %d calls, want %v after %d", err, f.calls, tc.wantErr, tc.wantCalls)
			}
			if tc.wantCalls > 1 && slept == 0 {
				t.Fatal("retried without pausing")
			}
		})
	}
}
