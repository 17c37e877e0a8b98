package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mfad/mfad/sim"
)

// simModem is a simulated modem with a watch on the AT commands it gets.
type simModem struct {
	*sim.Modem
	w *cmdWatch
}

// newSimModems starts n simulated modems that take delay per send and
// report delivery to clients that ask.
func newSimModems(n int, delay time.Duration) ([]*simModem, error) {
	var mods []*simModem
	for range n {
		w := &cmdWatch{seen: map[string]bool{}}
		m, err := sim.NewModem(sim.ModemOptions{SendDelay: delay, DeliveryReports: true, Log: slog.New(w)})
		if err != nil {
			closeSims(mods)
			return nil, err
		}
		mods = append(mods, &simModem{Modem: m, w: w})
	}
	return mods, nil
}

func closeSims(mods []*simModem) {
	for _, m := range mods {
		m.Close()
	}
}

// cmdWatch is a slog.Handler for a simulated modem's log: it notes which AT
// commands the modem received and when the last one came.
type cmdWatch struct {
	mu   sync.Mutex
	seen map[string]bool
	last time.Time
}

func (w *cmdWatch) Enabled(context.Context, slog.Level) bool { return true }

func (w *cmdWatch) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "at command" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "command" {
			w.mu.Lock()
			w.seen[a.Value.String()] = true
			w.last = time.Now()
			w.mu.Unlock()
			return false
		}
		return true
	})
	return nil
}

func (w *cmdWatch) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *cmdWatch) WithGroup(string) slog.Handler      { return w }

// settled reports whether the client has initialised the modem (it asked
// for the IMEI, the last step of both smsd's and gammu-smsd's start-up) and
// has sent nothing for quiet since: it is waiting for work.
func (w *cmdWatch) settled(quiet time.Duration) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seen["+CGSN"] && time.Since(w.last) >= quiet
}

// waitSettled waits until every modem's client has settled, or fails after
// timeout; alive, when not nil, reports a client that died meanwhile.
func waitSettled(ctx context.Context, mods []*simModem, timeout time.Duration, alive func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		ok := true
		for _, m := range mods {
			ok = ok && m.w.settled(1500*time.Millisecond)
		}
		if ok {
			return nil
		}
		if alive != nil {
			if err := alive(); err != nil {
				return err
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("modems not initialised by their client within %v", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
