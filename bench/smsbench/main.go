// Command smsbench measures mfad's SMS path and compares it with
// smstools3's smsd and Gammu SMSD (gammu-smsd) driving the same simulated
// GSM modems (package sim: real pseudo-terminals speaking AT commands).
//
// It runs, in one process and one go so that every ratio comes from the
// same machine state:
//
//   - Side by side: the same burst of messages (default 200, all submitted
//     at once) through modems that take a realistic 0.5 s per send, with
//     one and with two modems, via mfad, smsd and gammu-smsd: wall time
//     against the physical floor (messages × delay / modems), latency from
//     submission to modem, and, with one modem, the latency of single
//     messages sent to an idle system.
//   - Overhead, last: mfad (service, durable queue, HTTP API on a Unix
//     socket, encrypted Badger store on disk, hw/modem driver) with a
//     zero-latency modem. Sends one at a time give the time from the start
//     of POST /v1/login/{id}/sms to its answer, to the driver writing
//     AT+CMGS, and to the message body reaching the modem; sends from
//     concurrent clients give codes per second end to end.
//
// mfad is given 200 users with confirmed phones first (enrolled through the
// API with a zero-latency modem). smsd and gammu-smsd run with the
// documented configurations and their default polling (smsd delaytime 10 s;
// gammu-smsd CommTimeout as -gammu-commtimeout, default 5 s as in the
// reference configuration, the program's own default being 30 s); messages
// are spooled to them as files, written under another name and renamed into
// place. gammu-smsd drives one modem per instance: with two modems two
// instances run, each with its own outbox, and the submitter deals the
// messages to them in turn; with -gammu-shared (the default) two instances
// sharing one outbox are run as well, to show what that does. Peers whose
// program is missing are skipped with a message.
//
// Usage (about 25 minutes on 2 cores; see README.md):
//
//	go run ./bench/smsbench
//	go run ./bench/smsbench -messages 20 -overhead 200 -idle 2 -systems mfad
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	o := DefaultOptions()
	var systems, modems string
	flag.IntVar(&o.Users, "users", o.Users, "mfad users to enrol, each with a phone (at least -messages)")
	flag.IntVar(&o.Overhead, "overhead", o.Overhead, "sends of the zero-latency overhead measurement (0 skips it)")
	flag.IntVar(&o.Clients, "clients", o.Clients, "concurrent clients of the overhead throughput measurement")
	flag.IntVar(&o.Messages, "messages", o.Messages, "messages of the side-by-side burst (0 skips it)")
	flag.DurationVar(&o.Delay, "delay", o.Delay, "time the simulated modem takes per send in the side-by-side run")
	flag.StringVar(&modems, "modems", "1,2", "modem counts of the side-by-side run")
	flag.IntVar(&o.Idle, "idle", o.Idle, "single messages sent to each idle system (one modem) for its latency (0 skips it)")
	flag.StringVar(&systems, "systems", strings.Join(o.Systems, ","), "systems to run: mfad, smstools3, gammu")
	flag.BoolVar(&o.GammuShared, "gammu-shared", o.GammuShared, "also run two gammu-smsd instances sharing one outbox")
	flag.IntVar(&o.GammuCommTimeout, "gammu-commtimeout", o.GammuCommTimeout, "gammu-smsd CommTimeout, seconds between looks at an empty outbox")
	flag.StringVar(&o.Dir, "dir", "", "work directory, kept afterwards (default: a temporary directory, removed)")
	flag.Parse()
	o.Systems = strings.Split(systems, ",")
	o.Modems = nil
	for _, f := range strings.Split(modems, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "smsbench: bad -modems %q\n", modems)
			os.Exit(2)
		}
		o.Modems = append(o.Modems, n)
	}
	o.Log = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "smsbench:", err)
		os.Exit(1)
	}
	rep.Print(os.Stdout)
}
