package main

import (
	"strings"
	"testing"
	"time"
)

// TestCrashUnderLoad kills the real daemon with SIGKILL while 16 clients
// verify codes, restarts it, and checks that no acknowledged decision was
// lost: every code answered "ok" is refused after the restart and every
// answered failure is still counted.
func TestCrashUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the daemon twice and runs load for seconds")
	}
	var log strings.Builder
	rep, err := Run(Options{Users: 300, Clients: 16, Duration: 3 * time.Second, Crash: true, FailRatio: 0.2, IdleWait: time.Second, Log: &log})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	var out strings.Builder
	rep.Print(&out)
	t.Log(out.String())
	if rep.AckedOK == 0 || rep.AckedFail == 0 {
		t.Fatalf("the load acknowledged too little to test anything: %d ok, %d failures", rep.AckedOK, rep.AckedFail)
	}
	if rep.CrashProblems != 0 {
		t.Fatalf("%d acknowledged decisions lost or replayable after SIGKILL", rep.CrashProblems)
	}
	if rep.Ready <= 0 || rep.IdleRSSKB <= 0 {
		t.Fatalf("READY or RSS not measured: %+v", rep)
	}
}
