// Package modem sends SMS through GSM modems on serial ports: a driver for
// one modem (Modem) and a Pool that spreads messages over several.
//
// # Use
//
//	m, err := modem.Open(ctx, modem.Config{Name: "gsm0",
//		Device:  "/dev/serial/by-id/usb-Quectel_EC25-if02-port0",
//		PINFile: "/etc/mfad/gsm0.pin", StatusReports: true,
//		OnDelivery: recordDelivery}, log)
//	pool := modem.NewPool([]*modem.Modem{m}, modem.PoolOptions{Log: log})
//	res, err := pool.Send(ctx, modem.Message{To: "+4915112345678", Text: text, ID: auditID})
//	// res.Outcome is Sent, Failed or Unknown; res.Attempts is for the audit.
//
// Open fails only on an invalid Config (see Config.Validate, which names
// every bad field); the device is opened in the background and retried
// until it works. Status reports each step for `mfad status`.
//
// # Layers
//
// From the bottom: the serial port (github.com/tarm/serial, opened only in
// dial); a reader goroutine that hands the bytes to one io.ReadWriter per
// AT layer instance, so that a wedged modem gets a fresh AT layer without
// the port being re-opened; an optional redacting trace (Config.Trace);
// the AT layer (github.com/warthog618/modem v0.4.0, packages at and gsm);
// PDU encoding (github.com/warthog618/sms); and the driver logic:
// initialisation, sends with precise outcomes, status reports, health
// checks and re-opening.
//
// # Initialisation
//
// After opening the port the driver aborts any half-typed command (ESC),
// sends Config.InitCommands (default ATZ, ATE0, AT+CMEE=1; configurable
// per modem, as some modems refuse +CMEE=2 or certain +CNMI settings),
// reads the manufacturer, model and firmware, checks the SIM (AT+CPIN?)
// and enters the PIN from Config.PINFile if asked, selects PDU or text
// mode, asks for status reports (Config.NotifyCommand, default
// +CNMI=2,1,0,1,0, and +CSMP in text mode) when configured, waits up to
// RegisterTimeout for network registration (+CREG or +CEREG, home or
// roaming), and reads the signal (+CSQ, in dBm) and operator (+COPS).
// gsm.Init is not used: it fails unless AT+GCAP reports +CGSM, which some
// modems do not, and checks neither the PIN nor the network. The driver
// never sends AT+CFUN=1,1 (Validate refuses it): it reboots many USB
// sticks, some into their mass-storage mode.
//
// The PIN file must be private (mode 0600 or 0400) and is read on every
// initialisation; the PIN never appears in a log, an error or the trace.
// A PIN the SIM refuses is not sent again by this process until the
// file's content changes, and a PIN whose answer was lost is sent at most
// twice, so the daemon cannot use up the SIM's three attempts by itself.
// A restarted daemon does not remember a refused PIN: fix the file first.
//
// # Sending and outcomes
//
// Send normalises the number to E.164 (NormalizeE164: numbers must carry
// their country code, because the PDU encoder marks every number
// international), checks the text (not empty, UTF-8, no control
// characters but line breaks), encodes it and runs AT+CMGS once per part.
// PDU mode is the default: GSM 7-bit with the extension table (€ [ ] { }
// \ ^ ~ |) when every character fits, UCS-2 otherwise, and concatenated
// parts with 8-bit references from one counter per modem, starting at a
// random value (gsm.SendLongMessage would use reference 1 for every
// message, and phones merge parts of different messages with equal
// references). Text mode is a fallback for modems with a broken PDU mode:
// the at package writes raw bytes with no character set handling, so it
// takes one part of plain ASCII letters, digits and common punctuation,
// the characters that ASCII and the GSM alphabet share, and refuses the
// rest with ErrNotEncodable.
//
// Every send ends in one of three outcomes. Sent: the modem returned a
// message reference for every part. Failed: certainly not sent (in whole),
// safe to retry. Unknown, with ErrUnknownOutcome: the body of a part
// reached the modem but no final result did, so a retry may deliver the
// message twice. The distinction is made where the bytes are written: the
// body of a +CMGS (ended by Ctrl-Z) goes through a guard that records
// whether it was written and, once the sender gave up, refuses to write
// it, so a body never goes out after Send reported Failed. A final result
// counts only if it can answer the body: Sent needs the written body and a
// "+CMGS: <mr>" line, and after the body only a +CMS or +CME ERROR with a
// code means Failed; a bare OK or ERROR there may be a stale answer and
// means Unknown. A Send whose context ends returns at once, Failed or
// Unknown by the same rule; the exchange finishes in the background and
// its late result is logged.
//
// # Timeouts and resynchronisation
//
// Every command has a timeout that fits it: CommandTimeout for ordinary
// commands and for the "> " prompt of +CMGS, and SendTimeout (default 60
// s, as smstools allows) for the result after the body, since real modems
// take 5-10 s and more. The at package's default of 1 s is never used. A
// modem that does not prompt within CommandTimeout is taken as wedged: the
// body is withheld (Failed, ErrTimeout), the modem is marked down at once
// so that a Pool bypasses it, and it is re-initialised with backoff.
//
// After a timeout the modem may still answer the old command, and the at
// package would take that late OK as the answer to the next one. So the
// next command is preceded by a resynchronisation: ESC (ending any message
// entry), a wait until the line has been quiet for 500 ms, and a probe
// (AT+CSQ) that must be answered with its own "+CSQ:" line. Three failed
// probes re-initialise the modem. A "> " prompt that arrives outside a send
// (a late prompt) leaves the modem waiting for a body; the next command
// therefore resynchronises as well instead of being swallowed. A late
// "+CMGS:" answer to a send reported Unknown is logged.
//
// Unsolicited result codes (RING, +CMTI, +CREG, +CDS, vendor ones such as
// ^RSSI or +QIND) can arrive inside an answer, and the at package passes
// them on as part of it. Answers are therefore filtered: a command with a
// "+NAME" answer keeps only "+NAME:" lines, the registration queries also
// check the answer's shape ("<n>,<stat>", which the URC forms lack), and
// lines that look like URCs are dropped from bare answers such as +CGMI.
//
// # Status reports
//
// With Config.StatusReports every part requests a status report (TP-SRR)
// and the modem is asked to deliver them as +CDS URCs; if it refuses the
// setting, reports are turned off for that modem rather than left to fill
// its storage. The driver reads +CDS from the byte stream itself (the at
// package cannot reliably collect a URC's second line, and gsm has no +CDS
// support), decodes both the PDU form ("+CDS: <length>" and the PDU line;
// gsm.UnmarshalTPDU needs the "+CDS: " prefix stripped) and the text form,
// and hands each to Config.OnDelivery as a DeliveryReport carrying the
// modem name and message reference of Result.Refs.
//
// # Lost and re-appearing devices
//
// A read or write error (a USB modem dropping off the bus) marks the modem
// down; it is re-opened by its path and re-initialised with exponential
// backoff (ReopenBackoff up to ReopenBackoffMax) until it is back. A USB
// modem often comes back as another /dev/ttyUSBn, so configure its stable
// /dev/serial/by-id/ link (list them with `ls -l /dev/serial/by-id/`); it
// is resolved again on every open, and a path that now names another
// device makes the driver drop the old port even if it still looks alive.
// tarm/serial keeps the descriptor in blocking mode, where Close does not
// wake a pending read; the driver therefore never waits for Close, and
// never opens a second descriptor on a device while the first one's reader
// may still be waiting on it (a wedged modem is re-initialised over the
// same port instead), so no reply is lost to a stale reader. ReadTimeout
// stays 0, as a read timeout makes tarm/serial report an idle line as EOF.
// Health checks (every HealthInterval) notice an idle modem that stopped
// answering or lost the network.
//
// # Pool
//
// Pool.Send checks the number and text, then gives the message to a ready
// modem with room under its rate limit (Config.RatePerMinute, counted in
// parts over a sliding minute), preferring modems that have not failed
// this message, then the least busy and the least recently used, so the
// load spreads evenly. A Failed attempt is retried at once on another
// modem and, once every ready modem has failed it, after a backoff, until
// the message is sent, MaxAttempts is reached or the deadline passes. An
// Unknown outcome is returned, never retried, so that the caller can
// decide and audit; Result.Attempts records every attempt. The Pool takes
// one message at a time per call and keeps no queue: durability is the
// caller's.
//
// # Logging and secrets
//
// Logs carry the modem name, parts, references, outcomes and error codes.
// Phone numbers appear masked ("+49*********78"); PINs and message texts
// never appear, and Config.Trace replaces them (and PDUs) by placeholders.
//
// # Tests
//
// The tests run the real serial, AT and PDU code over pseudo-terminals:
// against the simulated modem of package sim, and against a scripted peer
// that puts bytes on the line at exact points of an exchange (URCs inside
// answers, late and stale results, late prompts). A real modem is tested
// only on request, and an SMS is sent only with -modem-send-to:
//
//	go test -run TestHardwareModem ./hw/modem/ -modem=/dev/serial/by-id/usb-...-if02-port0 \
//	    [-modem-pin-file=/etc/mfad/gsm0.pin] [-modem-send-to=+4915112345678]
//
// # Benchmarks
//
// BenchmarkSend measures sends per second through the real serial, AT and
// PDU code against the simulated modem of package sim with no send delay,
// and the time from the Send call to the first byte written to the port
// (via Config.Trace):
//
//	go test -run '^$' -bench Send -benchtime 3s ./hw/modem/
package modem
