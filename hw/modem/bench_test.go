package modem_test

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/mfad/mfad/hw/modem"
	"github.com/mfad/mfad/sim"
)

// firstWrite is a Config.Trace that notes when the first line is written
// to the port after arm.
type firstWrite struct {
	mu    sync.Mutex
	armed bool
	at    time.Time
}

func (f *firstWrite) arm() {
	f.mu.Lock()
	f.armed, f.at = true, time.Time{}
	f.mu.Unlock()
}

func (f *firstWrite) Write(p []byte) (int, error) {
	now := time.Now()
	f.mu.Lock()
	if f.armed && bytes.HasPrefix(p, []byte("w: ")) {
		f.armed, f.at = false, now
	}
	f.mu.Unlock()
	return len(p), nil
}

func (f *firstWrite) first() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.at
}

// BenchmarkSend sends single-part messages through the real serial, AT
// and PDU code to the simulated modem with no send delay. It reports
// sends per second and the time from the Send call to the first byte
// written to the port (seen through Config.Trace, just before the write):
//
//	go test -run '^$' -bench Send -benchtime 3s ./hw/modem/
func BenchmarkSend(b *testing.B) {
	s := newSim(b, sim.ModemOptions{})
	fw := &firstWrite{}
	cfg := testConfig("bench", s.Path())
	cfg.Trace = fw
	cfg.StatusReports = false
	m, err := modem.Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	waitState(b, m, modem.StateReady)
	ctx := context.Background()
	var toFirst time.Duration
	n := 0
	for b.Loop() {
		fw.arm()
		start := time.Now()
		r, err := m.Send(ctx, recipient, "Your mfad code is 123456")
		if err != nil || r.Outcome != modem.Sent {
			b.Fatalf("Send = %+v, %v", r, err)
		}
		toFirst += fw.first().Sub(start)
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "sends/s")
	b.ReportMetric(float64(toFirst.Microseconds())/float64(n), "µs-to-first-byte")
}
