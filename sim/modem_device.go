package sim

import (
	"bytes"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Control characters with a meaning on the serial line.
const (
	chCR  = '\r'
	chLF  = '\n'
	chBS  = 0x08
	chSUB = 0x1a // Ctrl-Z: ends the text of +CMGS
	chESC = 0x1b // cancels +CMGS; discards a partial command line
)

// Input limits. A real modem has buffers of a few hundred bytes; these are
// larger than anything a correct client sends.
const (
	maxCommandLine = 1024 // bytes of one command line after "AT"
	maxSMSInput    = 1024 // characters between the "> " prompt and Ctrl-Z
	maxTPDULen     = 164  // longest SMS-SUBMIT TPDU, in octets
	minTPDULen     = 7    // shortest SMS-SUBMIT TPDU, in octets
	maxPartials    = 64   // incomplete concatenated messages kept for reassembly
)

// SIM lock states.
type simState int

const (
	simReady simState = iota
	simPIN
	simPUK
	simBlocked
)

// PIN and PUK attempts a SIM allows.
const (
	pinAttempts = 3
	pukAttempts = 10
)

// Fixed network identity of the simulated cell and operator.
const (
	simLAC     = "00C3"
	simCellID  = "0000139D"
	simPLMN    = "00101"
	defaultSCA = "+447000000000"
)

// CME error codes (3GPP TS 27.007 §9.2) the device answers with.
const (
	cmeNotAllowed   = 3
	cmeNotSupported = 4
	cmeSIMPIN       = 11
	cmeSIMPUK       = 12
	cmeSIMFailure   = 13
	cmeBadPassword  = 16
)

// CMS error codes (3GPP TS 27.005 §3.2.5) the device answers with.
const (
	cmsNotAllowed    = 302
	cmsBadPDUParam   = 304
	cmsBadTextParam  = 305
	cmsSIMPIN        = 311
	cmsSIMPUK        = 312
	cmsSIMFailure    = 313
	cmsBadIndex      = 321
	cmsNoService     = 331
	cmsNoAckExpected = 340
	cmsUnknown       = 500
)

// cmeText holds the verbose texts of +CMEE=2.
var cmeText = map[int]string{
	0:   "phone failure",
	1:   "no connection to phone",
	2:   "phone-adaptor link reserved",
	3:   "operation not allowed",
	4:   "operation not supported",
	5:   "PH-SIM PIN required",
	10:  "SIM not inserted",
	11:  "SIM PIN required",
	12:  "SIM PUK required",
	13:  "SIM failure",
	14:  "SIM busy",
	15:  "SIM wrong",
	16:  "incorrect password",
	17:  "SIM PIN2 required",
	18:  "SIM PUK2 required",
	20:  "memory full",
	21:  "invalid index",
	22:  "not found",
	23:  "memory failure",
	24:  "text string too long",
	25:  "invalid characters in text string",
	26:  "dial string too long",
	27:  "invalid characters in dial string",
	30:  "no network service",
	31:  "network timeout",
	32:  "network not allowed - emergency calls only",
	100: "unknown",
}

// noiseURCs are the unsolicited result codes URC noise cycles through; %d is
// replaced by a running number or the registration state.
var noiseURCs = []string{
	"RING",
	`+CMTI: "SM",%d`,
	"+CREG: %d",
	"^RSSI: 12",
	"+CIEV: 2,3",
}

// outChunk is a piece of device output, written after waiting delay.
type outChunk struct {
	delay time.Duration
	data  []byte
}

// modemSettings are what ATZ, AT&F and a power cycle restore.
type modemSettings struct {
	echo    bool // E1
	numeric bool // V0
	quiet   bool // Q1
	sregs   map[int]int
	cmee    int
	cmgf    int // 0 PDU, 1 text
	cscs    string
	csmp    [4]int // fo, vp, pid, dcs
	cnmi    [5]int // mode, mt, bm, ds, bfr
	csdh    int
	csms    int
	cmms    int
	cusd    int
	cpms    [3]string
	creg    int
	cereg   int
	cgreg   int
	copsFmt int
}

func defaultSettings() modemSettings {
	return modemSettings{
		echo:  true,
		cscs:  "GSM",
		csmp:  [4]int{17, 167, 0, 0},
		cnmi:  [5]int{0, 0, 0, 0, 0},
		cpms:  [3]string{"SM", "SM", "SM"},
		sregs: map[int]int{},
	}
}

// defaultSRegs are the V.250 defaults of the S registers ATSn? reports.
var defaultSRegs = map[int]int{3: 13, 4: 10, 5: 8, 6: 2, 7: 50, 8: 2, 10: 14}

// prompt is the state between the "> " prompt of +CMGS and Ctrl-Z.
type prompt struct {
	pdu      bool
	length   int    // PDU mode: declared TPDU length
	da       string // text mode: destination as addressed
	toda     int    // text mode: type of destination address
	buf      []byte
	overflow bool
}

// modemDevice is the AT command interpreter of a simulated modem: bytes from the
// serial line go into feed, bytes for the serial line come out as chunks.
// It has no I/O and no clock of its own, so it can be driven directly (as the
// fuzz test does). It is not safe for concurrent use; Modem serialises it.
type modemDevice struct {
	opts    ModemOptions // defaults applied
	log     *slog.Logger
	deliver func(SMS)

	set modemSettings

	line     []byte // command line received so far
	overflow bool   // the command line exceeded maxCommandLine
	lastLine []byte // previous command line, for A/
	prompt   *prompt

	sim      simState
	pin      string
	pinTries int
	pukTries int
	sca      string
	scaType  int
	cfun     int

	// Network state and faults set through Modem.
	stat       int
	rssi       int
	failN      int
	failCMS    int
	replyDelay time.Duration
	wedged     bool
	wedges     int // Wedge(true) calls so far
	noise      bool
	noiseSeq   int

	mr       byte
	sends    int
	partials map[concatKey]*smsPartial
	order    []concatKey // partials, oldest first
	urcs     []string
	lastStat int // effective registration state last reported

	consumed int // bytes fed so far, wedged or not
	out      []outChunk
}

func newDevice(opts ModemOptions, log *slog.Logger, deliver func(SMS)) *modemDevice {
	d := &modemDevice{
		opts:     opts,
		log:      log,
		deliver:  deliver,
		stat:     1,
		rssi:     opts.RSSI,
		partials: map[concatKey]*smsPartial{},
		sca:      defaultSCA,
		scaType:  145,
	}
	d.powerOn()
	return d
}

// powerOn gives the device the state of a freshly powered modem: default
// settings, no partial input, radio on and the SIM locked if it has a PIN.
// Faults, the message reference and reassembly state survive.
func (d *modemDevice) powerOn() {
	d.set = defaultSettings()
	d.line, d.overflow, d.lastLine, d.prompt = nil, false, nil, nil
	d.cfun = 1
	d.urcs = nil
	d.lockSIM(d.opts.PIN)
	d.lastStat = d.effectiveStat()
}

// lockSIM replaces the SIM's PIN; a non-empty PIN locks the SIM.
func (d *modemDevice) lockSIM(pin string) {
	d.pin = pin
	d.pinTries, d.pukTries = pinAttempts, pukAttempts
	if pin == "" {
		d.sim = simReady
	} else {
		d.sim = simPIN
	}
}

// effectiveStat is the registration state the modem reports: none while the
// SIM is locked or the radio is off.
func (d *modemDevice) effectiveStat() int {
	if d.sim != simReady || d.cfun != 1 {
		return 0
	}
	return d.stat
}

func isRegistered(stat int) bool { return stat == 1 || stat == 5 }

// ---- output ----

// emit appends data to the output, merging it into the last chunk when it
// needs no extra delay.
func (d *modemDevice) emit(delay time.Duration, data string) {
	if data == "" && delay == 0 {
		return
	}
	if n := len(d.out); n > 0 && delay == 0 {
		d.out[n-1].data = append(d.out[n-1].data, data...)
		return
	}
	d.out = append(d.out, outChunk{delay: delay, data: []byte(data)})
}

func (d *modemDevice) takeOutput() []outChunk {
	out := d.out
	d.out = nil
	return out
}

// infoText formats information lines of one command.
func (d *modemDevice) infoText(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	if d.set.numeric {
		return strings.Join(lines, "\r\n") + "\r\n"
	}
	return "\r\n" + strings.Join(lines, "\r\n") + "\r\n"
}

// urcText formats one unsolicited result code.
func (d *modemDevice) urcText(urc string) string {
	if d.set.numeric {
		return urc + "\r\n"
	}
	return "\r\n" + urc + "\r\n"
}

// atResult is a final result code.
type atResult struct {
	kind atResultKind
	code int
}

type atResultKind int

const (
	resOK atResultKind = iota
	resError
	resCME
	resCMS
	resPrompt // +CMGS: the prompt is sent instead of a final result
)

var (
	resultOK     = atResult{kind: resOK}
	resultError  = atResult{kind: resError}
	resultPrompt = atResult{kind: resPrompt}
)

func cmeResult(code int) atResult { return atResult{kind: resCME, code: code} }
func cmsResult(code int) atResult { return atResult{kind: resCMS, code: code} }

// resultText formats a final result code according to ATV, ATQ and +CMEE.
func (d *modemDevice) resultText(r atResult) string {
	if d.set.quiet || r.kind == resPrompt {
		return ""
	}
	var verbose, numeric string
	switch r.kind {
	case resOK:
		verbose, numeric = "OK", "0"
	case resCME:
		switch d.set.cmee {
		case 0:
			verbose, numeric = "ERROR", "4"
		case 1:
			verbose = "+CME ERROR: " + strconv.Itoa(r.code)
		default:
			text, found := cmeText[r.code]
			if !found {
				text = strconv.Itoa(r.code)
			}
			verbose = "+CME ERROR: " + text
		}
	case resCMS:
		verbose = "+CMS ERROR: " + strconv.Itoa(r.code)
	default:
		verbose, numeric = "ERROR", "4"
	}
	if !d.set.numeric {
		return "\r\n" + verbose + "\r\n"
	}
	if numeric != "" {
		return numeric + "\r"
	}
	return verbose + "\r\n"
}

// reply emits the answer to one command line or one message: info text and
// final result after the reply delay plus extra, with URC noise and queued
// URCs around it.
func (d *modemDevice) reply(extra time.Duration, info string, r atResult) {
	text := info + d.resultText(r)
	if d.noise {
		d.noiseSeq++
		urc := d.urcText(d.nextNoise())
		if d.noiseSeq%2 == 1 {
			text = urc + text
		} else {
			text += urc
		}
	}
	d.emit(d.replyDelay+extra, text)
	if r.kind != resPrompt {
		d.flushURCs()
	}
}

// nextNoise returns the next noise URC.
func (d *modemDevice) nextNoise() string {
	f := noiseURCs[d.noiseSeq%len(noiseURCs)]
	switch {
	case strings.HasPrefix(f, "+CREG"):
		return fmt.Sprintf(f, d.effectiveStat())
	case strings.Contains(f, "%d"):
		return fmt.Sprintf(f, d.noiseSeq%30+1)
	}
	return f
}

// queueURC queues an unsolicited result code; it is written at once when the
// modemDevice is idle, else after the current reply.
func (d *modemDevice) queueURC(urc string) {
	d.urcs = append(d.urcs, urc)
}

// idle reports whether the device is between command lines: no partial line
// and no open prompt.
func (d *modemDevice) idle() bool { return len(d.line) == 0 && !d.overflow && d.prompt == nil }

// flushURCs emits the queued URCs if the device is idle.
func (d *modemDevice) flushURCs() {
	if !d.idle() || d.wedged {
		if d.wedged {
			d.urcs = nil
		}
		return
	}
	for _, u := range d.urcs {
		d.emit(0, d.urcText(u))
	}
	d.urcs = nil
}

// noiseTick queues one noise URC, for the periodic part of URC noise.
func (d *modemDevice) noiseTick() {
	if !d.noise || d.wedged {
		return
	}
	d.noiseSeq++
	d.queueURC(d.nextNoise())
	d.flushURCs()
}

// statChanged queues registration URCs if the effective registration state
// changed since the last report.
func (d *modemDevice) statChanged() {
	stat := d.effectiveStat()
	if stat == d.lastStat {
		return
	}
	d.lastStat = stat
	for _, r := range []struct {
		name string
		n    int
	}{{"+CREG", d.set.creg}, {"+CGREG", d.set.cgreg}, {"+CEREG", d.set.cereg}} {
		switch {
		case r.n == 1:
			d.queueURC(fmt.Sprintf("%s: %d", r.name, stat))
		case r.n >= 2 && isRegistered(stat):
			d.queueURC(fmt.Sprintf("%s: %d,%q,%q,7", r.name, stat, simLAC, simCellID))
		case r.n >= 2:
			d.queueURC(fmt.Sprintf("%s: %d", r.name, stat))
		}
	}
}

// ---- input ----

// feed consumes bytes from the serial line and returns what the modem sends
// back. The output does not depend on how the input is split into calls.
func (d *modemDevice) feed(in []byte) []outChunk {
	d.consumed += len(in)
	for _, c := range in {
		switch {
		case d.wedged:
			// A wedged modem reads and drops everything.
		case d.prompt != nil:
			d.promptByte(c)
		default:
			d.commandByte(c)
		}
	}
	return d.takeOutput()
}

// commandByte handles one byte in command state.
func (d *modemDevice) commandByte(c byte) {
	switch c {
	case chESC:
		// Cancels nothing in command state but the partial line.
		d.line, d.overflow = d.line[:0], false
		d.flushURCs()
		return
	case chSUB:
		return
	}
	if d.set.echo && (c >= 0x20 || c == chCR || c == chLF || c == chBS) {
		d.emit(0, string(c))
	}
	switch {
	case c == chCR:
		line := d.line
		over := d.overflow
		d.line, d.overflow = nil, false
		d.commandLine(line, over)
	case c == chBS:
		if n := len(d.line); n > 0 {
			d.line = d.line[:n-1]
		}
	case c < 0x20 || c == 0x7f:
		// Other control characters are ignored (V.250 §5.2.1).
	case c == '/' && len(d.line) > 0 && (d.line[len(d.line)-1]|0x20) == 'a' && atIndex(d.line) < 0:
		// A/ repeats the previous command line at once.
		d.line, d.overflow = nil, false
		if d.lastLine != nil {
			d.commandLine(d.lastLine, false)
		}
	case len(d.line) >= maxCommandLine:
		d.overflow = true
	default:
		d.line = append(d.line, c)
	}
}

// atIndex returns the index of the first "AT" (any case) in line, or -1.
func atIndex(line []byte) int {
	for i := 0; i+1 < len(line); i++ {
		if line[i]|0x20 == 'a' && line[i+1]|0x20 == 't' {
			return i
		}
	}
	return -1
}

// commandLine executes a complete command line (without its CR).
func (d *modemDevice) commandLine(line []byte, overflow bool) {
	i := atIndex(line)
	if i < 0 {
		// Not a command line: a modem ignores text that does not start
		// with AT.
		d.flushURCs()
		return
	}
	if overflow {
		d.reply(0, "", resultError)
		return
	}
	d.lastLine = bytes.Clone(line[i:])
	body, valid := stripATSpaces(string(line[i+2:]))
	if !valid {
		d.reply(0, "", resultError)
		return
	}
	var info strings.Builder
	r := d.execute(body, &info)
	if r.kind == resPrompt {
		d.reply(0, info.String()+"\r\n> ", r)
		return
	}
	d.reply(0, info.String(), r)
}

// stripATSpaces removes spaces outside double quotes (V.250 §5.3.1) and
// reports whether every quote is closed.
func stripATSpaces(s string) (string, bool) {
	var b strings.Builder
	quoted := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '"' {
			quoted = !quoted
		}
		if c == ' ' && !quoted {
			continue
		}
		b.WriteByte(c)
	}
	return b.String(), !quoted
}

// atCommand is one parsed command of a command line.
type atCommand struct {
	name string // upper case, e.g. "+CMGS", "&F", "E"
	kind cmdKind
	args string // for set commands: everything after '='
	num  int    // for basic commands: the number after the letter, or -1
}

type cmdKind int

const (
	cmdExec cmdKind = iota
	cmdRead         // ?
	cmdTest         // =?
	cmdSet          // =args
)

// isATNameChar reports whether c may appear in an extended command name
// (V.250 §5.4.1).
func isATNameChar(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
		strings.IndexByte("!%-./:_", c) >= 0
}

// execute runs the commands of a command line body (after "AT", spaces
// removed) and writes their information text to info. It stops at the
// first error or at +CMGS.
func (d *modemDevice) execute(body string, info *strings.Builder) atResult {
	for i := 0; i < len(body); {
		c := body[i]
		var cmd atCommand
		switch {
		case c == ';':
			i++
			continue
		case strings.IndexByte("+^$%#*", c) >= 0:
			j := i + 1
			for j < len(body) && isATNameChar(body[j]) {
				j++
			}
			if j == i+1 {
				return resultError
			}
			cmd.name = strings.ToUpper(body[i:j])
			i = j
			switch {
			case strings.HasPrefix(body[i:], "=?"):
				cmd.kind = cmdTest
				i += 2
			case strings.HasPrefix(body[i:], "?"):
				cmd.kind = cmdRead
				i++
			case strings.HasPrefix(body[i:], "="):
				cmd.kind = cmdSet
				j := i + 1
				quoted := false
				for ; j < len(body) && (quoted || body[j] != ';'); j++ {
					if body[j] == '"' {
						quoted = !quoted
					}
				}
				cmd.args = body[i+1 : j]
				i = j
			}
			if i < len(body) && body[i] != ';' {
				return resultError
			}
		case c == '&' || c|0x20 >= 'a' && c|0x20 <= 'z':
			j := i + 1
			if c == '&' {
				if j >= len(body) || body[j]|0x20 < 'a' || body[j]|0x20 > 'z' {
					return resultError
				}
				j++
			}
			cmd.name = strings.ToUpper(body[i:j])
			i = j
			if cmd.name == "S" {
				var r atResult
				if i, r = d.sRegister(body, i, info); r.kind != resOK {
					return r
				}
				continue
			}
			cmd.num = -1
			k := i
			for k < len(body) && body[k] >= '0' && body[k] <= '9' && k-i < 3 {
				k++
			}
			if k > i {
				cmd.num, _ = strconv.Atoi(body[i:k])
			}
			i = k
		default:
			return resultError
		}
		r := d.run(cmd, info)
		if r.kind != resOK {
			return r
		}
	}
	return resultOK
}

// sRegister handles ATSn=v and ATSn? starting after the S at body[i].
func (d *modemDevice) sRegister(body string, i int, info *strings.Builder) (int, atResult) {
	j := i
	for j < len(body) && body[j] >= '0' && body[j] <= '9' && j-i < 3 {
		j++
	}
	if j == i || j >= len(body) {
		return j, resultError
	}
	n, _ := strconv.Atoi(body[i:j])
	if n > 99 {
		return j, resultError
	}
	switch body[j] {
	case '?':
		v, found := d.set.sregs[n]
		if !found {
			v = defaultSRegs[n]
		}
		info.WriteString(d.infoText([]string{fmt.Sprintf("%03d", v)}))
		return j + 1, resultOK
	case '=':
		k := j + 1
		for k < len(body) && body[k] >= '0' && body[k] <= '9' && k-j <= 3 {
			k++
		}
		v, err := strconv.Atoi(body[j+1 : k])
		if err != nil || v > 255 {
			return k, resultError
		}
		d.set.sregs[n] = v
		return k, resultOK
	}
	return j, resultError
}

// run executes one command.
func (d *modemDevice) run(cmd atCommand, info *strings.Builder) atResult {
	d.log.Debug("at command", "command", cmd.name)
	if len(cmd.name) == 1 || cmd.name[0] == '&' {
		return d.basic(cmd, info)
	}
	h, found := atCommands[cmd.name]
	if !found {
		return resultError
	}
	lines, r := h(d, cmd)
	info.WriteString(d.infoText(lines))
	return r
}

// basic executes a V.250 basic command such as E1, Z or &F.
func (d *modemDevice) basic(cmd atCommand, info *strings.Builder) atResult {
	flag := func(p *bool, on bool) atResult {
		switch cmd.num {
		case -1, 0:
			*p = !on
		case 1:
			*p = on
		default:
			return resultError
		}
		return resultOK
	}
	switch cmd.name {
	case "E":
		return flag(&d.set.echo, true)
	case "V":
		return flag(&d.set.numeric, false)
	case "Q":
		return flag(&d.set.quiet, true)
	case "Z", "&F":
		if cmd.num > 0 {
			return resultError
		}
		d.set = defaultSettings()
		return resultOK
	case "I":
		info.WriteString(d.infoText([]string{d.opts.Manufacturer, d.opts.Model, "Revision: " + d.opts.Revision}))
		return resultOK
	case "H", "X", "L", "M", "&C", "&D", "&K", "&S", "&W", "&V":
		return resultOK
	}
	return resultError
}

// ---- arguments ----

// atArg is one parameter of a set command.
type atArg struct {
	s      string
	quoted bool
}

func (a atArg) empty() bool { return a.s == "" && !a.quoted }

// splitATArgs splits set-command parameters at commas outside quotes. Quoted
// parameters lose their quotes; a quote inside a parameter or after its end
// makes the list invalid.
func splitATArgs(s string) ([]atArg, bool) {
	var args []atArg
	for {
		var a atArg
		if strings.HasPrefix(s, `"`) {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				return nil, false
			}
			a = atArg{s: s[1 : 1+end], quoted: true}
			s = s[end+2:]
		} else {
			end := strings.IndexByte(s, ',')
			if end < 0 {
				end = len(s)
			}
			a = atArg{s: s[:end]}
			if strings.IndexByte(a.s, '"') >= 0 {
				return nil, false
			}
			s = s[end:]
		}
		args = append(args, a)
		if s == "" {
			return args, true
		}
		if s[0] != ',' {
			return nil, false
		}
		s = s[1:]
	}
}

// atInt parses an unquoted decimal parameter in [lo, hi].
func atInt(a atArg, lo, hi int) (int, bool) {
	if a.quoted || a.s == "" || len(a.s) > 6 {
		return 0, false
	}
	for _, c := range []byte(a.s) {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(a.s)
	if err != nil || n < lo || n > hi {
		return 0, false
	}
	return n, true
}

// atInts parses up to len(dst) optional integer parameters into dst, each
// within its range; empty parameters keep dst's value.
func atInts(s string, dst []int, lo, hi []int) bool {
	args, valid := splitATArgs(s)
	if !valid || len(args) > len(dst) {
		return false
	}
	out := slices.Clone(dst)
	for i, a := range args {
		if a.empty() {
			continue
		}
		n, valid := atInt(a, lo[i], hi[i])
		if !valid {
			return false
		}
		out[i] = n
	}
	copy(dst, out)
	return true
}

// ---- SIM ----

// simErr returns the error a command that needs the SIM gets while the SIM
// is not ready: a CMS code for the SMS commands of TS 27.005, else a CME
// code.
func (d *modemDevice) simErr(smsCmd bool) (atResult, bool) {
	var c, s int
	switch d.sim {
	case simReady:
		return resultOK, false
	case simPIN:
		c, s = cmeSIMPIN, cmsSIMPIN
	case simPUK:
		c, s = cmeSIMPUK, cmsSIMPUK
	default:
		c, s = cmeSIMFailure, cmsSIMFailure
	}
	if smsCmd {
		return cmsResult(s), true
	}
	return cmeResult(c), true
}

// ---- character sets ----

// encodeString converts s for a quoted string in an answer, according to
// +CSCS.
func (d *modemDevice) encodeString(s string) string {
	if d.set.cscs != "UCS2" {
		return s
	}
	var b strings.Builder
	for _, u := range utf16Units(s) {
		fmt.Fprintf(&b, "%04X", u)
	}
	return b.String()
}

// decodeString converts a quoted string parameter according to +CSCS.
func (d *modemDevice) decodeString(s string) (string, bool) {
	switch d.set.cscs {
	case "UCS2":
		return decodeUCS2Hex(s)
	case "GSM":
		return decodeGSMText([]byte(s))
	case "8859-1":
		return decodeLatin1([]byte(s)), true
	default:
		return decodeIRA([]byte(s))
	}
}
