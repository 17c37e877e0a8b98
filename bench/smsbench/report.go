package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Print writes the report, the side-by-side run as a Markdown table.
func (r *Report) Print(w io.Writer) {
	o := r.Opts
	fmt.Fprintf(w, "machine: %s; work directory on %s (4 KiB append + fsync: p50 %s, p99 %s)\n", r.Machine, r.StoreFS, ms(r.Fsync.P50), ms(r.Fsync.P99))
	fmt.Fprintf(w, "run: %s, %s; load average (1 min) %.2f at the start, %.2f at the end\n",
		r.Start.Format(time.RFC3339), r.End.Sub(r.Start).Round(time.Second), r.LoadStart, r.LoadEnd)
	for _, s := range r.Skipped {
		fmt.Fprintf(w, "skipped %s\n", s)
	}
	if r.EnrolTime > 0 {
		fmt.Fprintf(w, "mfad: %d users enrolled, each with a confirmed phone, in %s; sms.per_user_hourly, per_number_hourly and global_hourly raised to %d;\n",
			o.Users, r.EnrolTime.Round(time.Millisecond), benchSMSLimit)
		fmt.Fprintf(w, "  modems: rate_limit = 0 (default 20 a minute), status reports on (default); dispatcher workers = modems + 1 (as the daemon)\n")
	}
	if ov := r.Overhead; ov != nil {
		fmt.Fprintf(w, "\n## Overhead: mfad, zero-latency modem\n\n")
		fmt.Fprintf(w, "%d sends one at a time (POST /v1/login, then timed from the start of POST /v1/login/{id}/sms):\n\n", ov.Sends)
		fmt.Fprintf(w, "| from the request to            | p50 | p95 | p99 | max |\n|---|---|---|---|---|\n")
		line := func(what string, l latencies) {
			if l.N == 0 {
				fmt.Fprintf(w, "| %s | n/a | | | |\n", what)
				return
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", what, ms(l.P50), ms(l.P95), ms(l.P99), ms(l.Max))
		}
		line("its answer (message queued, fsynced)", ov.Answer)
		line("first byte of AT+CMGS (driver trace)", ov.AT)
		line("message at the modem (Ctrl-Z)", ov.Modem)
		verdict := "met"
		if ov.Modem.P99 > 5*time.Millisecond {
			verdict = "MISSED"
		}
		fmt.Fprintf(w, "\ntarget p99 request→modem ≤ 5 ms: %s (%s)\n", verdict, ms(ov.Modem.P99))
		fmt.Fprintf(w, "\none client, one send at a time (each waiting for its message at the modem): %.0f codes/s end to end\n", ov.SeqRate)
		fmt.Fprintf(w, "%d sends from %d concurrent clients: last message at the modem %s after the first request = %.0f codes/s end to end;\n",
			ov.Burst, ov.Clients, ms(ov.BurstWall), float64(ov.Burst)/ov.BurstWall.Seconds())
		fmt.Fprintf(w, "  all answered in %s = %.0f requests/s, so up to %d messages waited in the queue; request→modem p50 %s, p99 %s;\n",
			ms(ov.BurstSubmitWall), float64(ov.Burst)/ov.BurstSubmitWall.Seconds(), ov.MaxQueue, ms(ov.BurstLatency.P50), ms(ov.BurstLatency.P99))
		fmt.Fprintf(w, "  CPU %s (this process: mfad, modem, clients); load %.2f\n", ov.CPU.Round(10*time.Millisecond), ov.Load)
	}
	if len(r.Rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\n## Side by side: %d messages submitted at once, %s per send at the modem\n\n", o.Messages, o.Delay)
	fmt.Fprintf(w, "floor = %d × %s / modems. wall = first submission to the end of the last send (its message reached the modem, plus the %s the modem takes).\n", o.Messages, o.Delay, o.Delay)
	fmt.Fprintf(w, "Latency = submission to message at the modem (Ctrl-Z); \"burst\" includes queueing behind the other messages, \"idle\" is %d single messages,\n", o.Idle)
	fmt.Fprintf(w, "one at a time, each at a random point of the system's polling cycle. dup = messages sent more than once, lost = never sent.\n")
	fmt.Fprintf(w, "all accepted = first submission to the last one answered by the API (mfad) or renamed into the spool (peers).\n")
	fmt.Fprintf(w, "CPU: the peer's processes / this process (simulated modems and submitter, and mfad itself in the mfad rows).\n\n")
	fmt.Fprintf(w, "| system | modems | delivered | dup | lost | all accepted | wall | floor | wall/floor | wall/mfad | burst p50 | burst p99 | idle p50 | idle max | per modem | CPU peer / bench | load |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	mfadWall := map[int]time.Duration{}
	for _, row := range r.Rows {
		if row.System == "mfad" {
			mfadWall[row.Modems] = row.Wall
		}
	}
	for _, row := range r.Rows {
		vsMfad := "-"
		if mw := mfadWall[row.Modems]; mw > 0 && row.Wall > 0 {
			vsMfad = fmt.Sprintf("%.2f", row.Wall.Seconds()/mw.Seconds())
		}
		idle50, idleMax := "-", "-"
		if row.Idle.N > 0 {
			idle50, idleMax = ms(row.Idle.P50), ms(row.Idle.Max)
		}
		per := make([]string, len(row.PerModem))
		for i, n := range row.PerModem {
			per[i] = fmt.Sprint(n)
		}
		vsFloor := "-"
		if row.Floor > 0 && row.Wall > 0 {
			vsFloor = fmt.Sprintf("%.3f", row.Wall.Seconds()/row.Floor.Seconds())
		}
		fmt.Fprintf(w, "| %s | %d | %d | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %.2f |\n",
			row.System, row.Modems, row.Delivered, row.Dups, row.Lost, ms(row.Accepted), ms(row.Wall), ms(row.Floor), vsFloor, vsMfad,
			ms(row.Latency.P50), ms(row.Latency.P99), idle50, idleMax, strings.Join(per, "+"),
			cpu(row.PeerCPU), cpu(row.SelfCPU), row.Load)
	}
	// Idle latency compared with mfad's.
	var mfadIdle time.Duration
	for _, row := range r.Rows {
		if row.System == "mfad" && row.Idle.N > 0 {
			mfadIdle = row.Idle.P50
		}
	}
	if mfadIdle > 0 {
		fmt.Fprintln(w)
		for _, row := range r.Rows {
			if row.System != "mfad" && row.Idle.N > 0 {
				fmt.Fprintf(w, "idle latency p50, %s vs mfad: %s vs %s = %.0f× lower with mfad\n", row.System, ms(row.Idle.P50), ms(mfadIdle), row.Idle.P50.Seconds()/mfadIdle.Seconds())
			}
		}
	}
}

func cpu(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}
