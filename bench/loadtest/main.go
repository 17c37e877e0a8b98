// Command loadtest measures mfad end to end: it enrolls N users with TOTP
// factors, starts the real daemon binary on that store, measures the time to
// systemd's READY=1 and the idle RSS, then verifies TOTP codes over the Unix
// socket from C concurrent clients and reports throughput and latency.
// Every answered decision is durable: the daemon answers only after the
// decision's transaction was fsynced (group commit).
//
// With -crash it also kills the daemon with SIGKILL in the middle of the
// load, restarts it, and checks that no acknowledged decision was lost or can
// be replayed: every code that was answered "ok" is rejected after the
// restart, and every user's failure counter holds at least the failures that
// were answered.
//
// Usage (see README, "Benchmarks"):
//
//	go run ./bench/loadtest -users 50000 -clients 32 -duration 10s
//	go run ./bench/loadtest -users 2000 -clients 32 -duration 3s -crash
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	var o Options
	flag.IntVar(&o.Users, "users", 50000, "users to enroll (each allows two successful verifications per run)")
	flag.IntVar(&o.Clients, "clients", 32, "concurrent clients, each with its own connection")
	flag.DurationVar(&o.Duration, "duration", 10*time.Second, "length of the verification phase")
	flag.BoolVar(&o.Crash, "crash", false, "kill -9 the daemon mid-load, restart it, and check that no acknowledged decision was lost")
	flag.StringVar(&o.Binary, "mfad", "", "mfad binary to run (default: build ./cmd/mfad)")
	flag.StringVar(&o.Dir, "dir", "", "work directory (default: a new temporary directory, removed afterwards)")
	flag.Float64Var(&o.FailRatio, "fail-ratio", 0.0, "fraction of verifications sent with a wrong code (to include failure-counter writes)")
	flag.DurationVar(&o.IdleWait, "idle-wait", 130*time.Second, "how long the daemon idles after READY before its RSS is read (the runtime forces a GC every 2 minutes)")
	flag.StringVar(&o.Client, "client", "raw", "raw (lean HTTP/1.1 on one connection per client, like a C login module) or nethttp (the Go package client)")
	flag.Parse()
	o.Log = os.Stderr
	rep, err := Run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
	rep.Print(os.Stdout)
	if rep.CrashProblems > 0 {
		os.Exit(1)
	}
}
