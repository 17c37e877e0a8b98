package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mfad/mfad/internal/testenv"
)

// TestMfadShort runs the benchmark's mfad path small and fast: 20 users,
// 20 overhead sends, and a burst of 20 messages through one and two
// zero-latency modems. It checks that every message reached a modem once
// and that every figure was measured.
func TestMfadShort(t *testing.T) {
	var log strings.Builder
	o := Options{Users: 20, Overhead: 20, Clients: 4, Messages: 20, Modems: []int{1, 2}, Idle: 2,
		Systems: []string{"mfad"}, Dir: t.TempDir(), Log: &log}
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	var out strings.Builder
	rep.Print(&out)
	t.Log(out.String())
	ov := rep.Overhead
	if ov == nil || ov.Answer.N != 20 || ov.AT.N != 20 || ov.Modem.N != 20 || ov.BurstLatency.N != 20 || ov.BurstWall <= 0 {
		t.Fatalf("overhead not fully measured: %+v", ov)
	}
	if ov.Modem.P50 < ov.AT.P50 || ov.AT.P50 <= 0 {
		t.Errorf("request→modem p50 %v is below request→AT+CMGS p50 %v: the trace and the modem disagree", ov.Modem.P50, ov.AT.P50)
	}
	if len(rep.Rows) != 2 {
		t.Fatalf("rows = %+v, want mfad with 1 and 2 modems", rep.Rows)
	}
	for _, r := range rep.Rows {
		if r.Delivered != 20 || r.Dups != 0 || r.Lost != 0 || r.Latency.N != 20 || r.Wall <= 0 {
			t.Errorf("%s with %d modems: %+v", r.System, r.Modems, r)
		}
		if r.Modems == 1 && r.Idle.N != 2 {
			t.Errorf("idle latency not measured: %+v", r.Idle)
		}
	}
	if two := rep.Rows[1]; two.PerModem[0] == 0 || two.PerModem[1] == 0 {
		t.Errorf("two modems: one was never used: %v", two.PerModem)
	}
	for _, want := range []string{"## Overhead", "## Side by side", "| mfad | 2 |"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

// TestPeersShort runs a few messages through smsd and gammu-smsd with one
// and two modems. Their polling makes it take a couple of minutes, so it
// only runs with MFAD_SMSBENCH_PEERS=1:
//
//	MFAD_SMSBENCH_PEERS=1 go test -run TestPeersShort -v ./bench/smsbench
func TestPeersShort(t *testing.T) {
	if os.Getenv("MFAD_SMSBENCH_PEERS") != "1" {
		t.Skip("takes minutes (the peers poll their spools); set MFAD_SMSBENCH_PEERS=1 to run")
	}
	testenv.RequireTool(t, "smsd", "apt-get install smstools")
	testenv.RequireTool(t, "gammu-smsd", "apt-get install gammu-smsd")
	var log strings.Builder
	o := Options{Users: 4, Clients: 1, Messages: 4, Delay: 100 * time.Millisecond, Modems: []int{1, 2}, Idle: 1,
		Systems: []string{"smstools3", "gammu"}, GammuShared: true, GammuCommTimeout: 5, Dir: t.TempDir(), Log: &log}
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	var out strings.Builder
	rep.Print(&out)
	t.Log(out.String())
	if len(rep.Rows) != 5 {
		t.Fatalf("got %d rows, want smsd and gammu-smsd with 1 and 2 modems and the shared outbox", len(rep.Rows))
	}
	for _, r := range rep.Rows {
		if r.Delivered != 4 || r.Lost != 0 || r.Wall <= 0 {
			t.Errorf("%s with %d modems: %+v", r.System, r.Modems, r)
		}
	}
}

// BenchmarkRequestToModem sends login codes one at a time through mfad and
// a zero-latency simulated modem and reports the time from the start of
// POST /v1/login/{id}/sms to the message body at the modem (each op also
// includes the POST /v1/login before it). Run with:
//
//	go test -run '^$' -bench RequestToModem -benchtime 2000x ./bench/smsbench
func BenchmarkRequestToModem(b *testing.B) {
	const users = 50
	mf, err := newMfad(b.TempDir(), users)
	if err != nil {
		b.Fatal(err)
	}
	defer mf.Close()
	ctx := context.Background()
	enrolMods, err := newSimModems(1, 0)
	if err != nil {
		b.Fatal(err)
	}
	err = mf.enrol(ctx, enrolMods)
	closeSims(enrolMods)
	if err != nil {
		b.Fatal(err)
	}
	mods, err := newSimModems(1, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer closeSims(mods)
	if err := mf.Start(ctx, mods); err != nil {
		b.Fatal(err)
	}
	defer mf.Stop()
	var lat []time.Duration
	k := 0
	for b.Loop() {
		i := k % users
		k++
		start, _, err := mf.submit(ctx, i)
		if err != nil {
			b.Fatal(err)
		}
		s, err := mods[0].WaitSMS(ctx, number(i))
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, s.Time.Sub(start))
	}
	l := summarise(lat)
	b.ReportMetric(float64(l.P50)/1e6, "p50-ms")
	b.ReportMetric(float64(l.P99)/1e6, "p99-ms")
}
