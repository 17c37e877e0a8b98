package modem

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/warthog618/modem/gsm"
	"github.com/warthog618/sms/encoding/tpdu"
)

// This file holds the pure line-level logic: which lines are unsolicited
// result codes (URCs), which lines belong to a command's answer, and the
// parsers for the answers and for +CDS status reports. Nothing here does
// I/O, so all of it is fuzzed.

// urcPrefixes are the prefixes of unsolicited result codes, standard
// (3GPP TS 27.005, 27.007) and common vendor ones.
var urcPrefixes = []string{
	"+CMTI:", "+CMT:", "+CDS:", "+CDSI:", "+CBM:", "+CBMI:", "+CRING:", "+CLIP:",
	"+CCWA:", "+CUSD:", "+CIEV:", "+CSSI:", "+CSSU:", "+CREG:", "+CGREG:",
	"+CEREG:", "+C5GREG:", "+CGEV:", "+CTZV:", "+CTZE:", "+CTZR:", "+CPIN:",
	"+CFUN:", "+QIND:", "+QUSIM:", "+PACSP", "+STIN:", "+CPMS:", "+QNITZ:",
	"^", "*PSUTTZ", "#", "DST:",
}

// urcLines are complete lines that are unsolicited result codes.
var urcLines = map[string]bool{
	"RING": true, "NO CARRIER": true, "RDY": true, "Call Ready": true,
	"SMS Ready": true, "PB DONE": true, "NORMAL POWER DOWN": true,
	"UNDER-VOLTAGE WARNNING": true, "UNDER-VOLTAGE WARNING": true,
	"OVER-VOLTAGE WARNNING": true, "OVER-VOLTAGE WARNING": true,
	"POWERED DOWN": true, "START": true,
}

// cmdPrefix returns the prefix of the information lines that answer cmd:
// "+CSQ" for "+CSQ", "+CREG" for "+CREG?", "" for "Z".
func cmdPrefix(cmd string) string {
	if i := strings.IndexAny(cmd, "=?"); i >= 0 {
		cmd = cmd[:i]
	}
	if strings.HasPrefix(cmd, "+") || strings.HasPrefix(cmd, "^") {
		return cmd
	}
	return ""
}

// looksLikeURC reports whether line is, by its shape, an unsolicited result
// code rather than part of an answer to a command with the given info
// prefix (see cmdPrefix).
func looksLikeURC(line, prefix string) bool {
	if urcLines[line] {
		return true
	}
	if prefix != "" && strings.HasPrefix(line, prefix+":") {
		return false
	}
	for _, p := range urcPrefixes {
		if strings.HasPrefix(line, p) {
			return true
		}
	}
	// Any other "+NAME:" line answers some other command, so it is not ours.
	if len(line) > 1 && line[0] == '+' {
		if i := strings.IndexByte(line, ':'); i > 1 && isUpperWord(line[1:i]) {
			return true
		}
	}
	return false
}

func isUpperWord(s string) bool {
	for _, r := range s {
		if (r < 'A' || r > 'Z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// answerLines keeps the lines of info (as the at package returns them for
// cmd) that answer cmd, dropping interleaved URCs, echoes and blank lines.
// For commands with a prefix only lines with that prefix are kept; for the
// others (such as +CGMI answered by a bare "QUALCOMM") anything that does
// not look like a URC.
func answerLines(cmd string, info []string) []string {
	prefix := cmdPrefix(cmd)
	var out []string
	for _, l := range info {
		l = strings.TrimSpace(l)
		switch {
		case l == "" || strings.HasPrefix(strings.ToUpper(l), "AT"):
		case prefix != "" && strings.HasPrefix(l, prefix+":"):
			out = append(out, l)
		case !looksLikeURC(l, prefix) && (prefix == "" || bareAnswer[prefix]):
			out = append(out, l)
		}
	}
	return out
}

// bareAnswer lists commands with a "+" name that many modems answer
// without repeating the prefix.
var bareAnswer = map[string]bool{"+CGMI": true, "+CGMM": true, "+CGMR": true, "+CGSN": true}

// value returns the part of an answer line after "PREFIX:", trimmed, or
// the line itself when it has no such prefix.
func value(line, prefix string) string {
	if prefix != "" && strings.HasPrefix(line, prefix+":") {
		return strings.TrimSpace(line[len(prefix)+1:])
	}
	return strings.TrimSpace(line)
}

// fields splits a comma-separated answer, honouring double quotes, and
// unquotes the fields. A quoted field keeps its commas.
func fields(s string) (out []string, quoted []bool) {
	var b strings.Builder
	inQ, wasQ := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			inQ = !inQ
			wasQ = true
		case c == ',' && !inQ:
			out = append(out, strings.TrimSpace(b.String()))
			quoted = append(quoted, wasQ)
			b.Reset()
			wasQ = false
		default:
			b.WriteByte(c)
		}
	}
	out = append(out, strings.TrimSpace(b.String()))
	quoted = append(quoted, wasQ)
	return out, quoted
}

// simState is the answer to +CPIN?.
func parseCPIN(lines []string) (string, error) {
	for _, l := range lines {
		if strings.HasPrefix(l, "+CPIN:") {
			return value(l, "+CPIN"), nil
		}
	}
	return "", errors.New("no +CPIN answer")
}

// Registration states of +CREG/+CGREG/+CEREG (3GPP TS 27.007 §7.2).
const (
	regNotSearching = 0
	regHome         = 1
	regSearching    = 2
	regDenied       = 3
	regUnknown      = 4
	regRoaming      = 5
)

func regRegistered(stat int) bool { return stat == regHome || stat == regRoaming }

func regString(stat int) string {
	switch stat {
	case regNotSearching:
		return "not registered"
	case regHome:
		return "home"
	case regSearching:
		return "searching"
	case regDenied:
		return "denied"
	case regRoaming:
		return "roaming"
	case 6, 7:
		return "sms only"
	default:
		return "unknown"
	}
}

// parseRegQuery finds the answer to a +CREG?-style query (prefix "+CREG",
// "+CGREG" or "+CEREG") among lines and returns <stat>. The answer is
// "<n>,<stat>[,<lac>,<ci>[,<AcT>]]"; the unsolicited form
// "<stat>[,<lac>,<ci>...]" has a quoted second field or none, so a URC that
// slipped into the answer is not mistaken for it.
func parseRegQuery(lines []string, prefix string) (int, error) {
	for _, l := range lines {
		if !strings.HasPrefix(l, prefix+":") {
			continue
		}
		f, q := fields(value(l, prefix))
		if len(f) < 2 || q[0] || q[1] {
			continue
		}
		n, err1 := strconv.Atoi(f[0])
		stat, err2 := strconv.Atoi(f[1])
		if err1 != nil || err2 != nil || n < 0 || n > 5 || stat < 0 || stat > 11 {
			continue
		}
		// SMS-only registrations (6, 7 in +CREG with E-UTRAN) count as
		// registered for our purpose.
		if stat == 6 || stat == 7 {
			stat = regHome
		} else if stat == 9 || stat == 10 {
			stat = regRoaming
		}
		return stat, nil
	}
	return 0, fmt.Errorf("no %s answer", prefix)
}

// parseCSQ returns the signal strength in dBm from "+CSQ: <rssi>,<ber>",
// or 0 when the modem does not know it (rssi 99).
func parseCSQ(lines []string) (int, error) {
	for _, l := range lines {
		if !strings.HasPrefix(l, "+CSQ:") {
			continue
		}
		f, _ := fields(value(l, "+CSQ"))
		rssi, err := strconv.Atoi(f[0])
		if err != nil {
			continue
		}
		switch {
		case rssi == 99:
			return 0, nil
		case rssi >= 0 && rssi <= 31:
			return -113 + 2*rssi, nil
		case rssi >= 100 && rssi <= 191: // TD-SCDMA range
			return -116 + (rssi - 100), nil
		}
	}
	return 0, errors.New("no valid +CSQ answer")
}

// parseCOPS returns the operator from "+COPS: <mode>[,<format>,<oper>[,<AcT>]]".
func parseCOPS(lines []string) string {
	for _, l := range lines {
		if !strings.HasPrefix(l, "+COPS:") {
			continue
		}
		f, _ := fields(value(l, "+COPS"))
		if len(f) >= 3 {
			return clip(f[2], 40)
		}
	}
	return ""
}

// parseMR returns the message reference from a +CMGS answer value, as
// gsm.SendPDU returns it ("12" or "12,\"<scts>\"").
func parseMR(v string) (int, error) {
	f, _ := fields(value(v, "+CMGS"))
	mr, err := strconv.Atoi(f[0])
	if err != nil || mr < 0 || mr > 255 {
		return -1, fmt.Errorf("bad message reference %q", clip(v, 20))
	}
	return mr, nil
}

// DeliveryReport is one SMS-STATUS-REPORT (+CDS) for a part sent by Modem.
// Match it to the message by Modem and Ref (see Result.Refs); references
// wrap at 256, so match the most recent send with that reference.
type DeliveryReport struct {
	Modem string
	// Ref is the TP-MR of the part, as +CMGS reported it.
	Ref int
	// Status is TP-ST (3GPP TS 23.040 §9.2.3.15): 0x00-0x1F delivered,
	// 0x20-0x3F still trying, 0x40-0x7F failed for good.
	Status int
	// Delivered is true when the part reached the phone (Status < 0x20).
	Delivered bool
	// Final is false while the service centre is still trying.
	Final bool
	// Discharged is when the service centre delivered it or gave up (TP-DT),
	// zero when the report did not say.
	Discharged time.Time
	// Received is when the modem reported it.
	Received time.Time
}

func statusFinal(st int) bool { return st < 0x20 || st >= 0x40 }

// decodeCDSPDU decodes a +CDS status report in PDU mode: header is the
// "+CDS: <length>" line and pdu the hex line that follows it (with the
// SMSC address prefix). gsm.UnmarshalTPDU expects the length as the last
// comma-separated field of its first line, so the prefix is stripped first.
func decodeCDSPDU(header, pdu string) (DeliveryReport, error) {
	length := value(header, "+CDS")
	if _, err := strconv.Atoi(length); err != nil {
		return DeliveryReport{}, errors.New("bad +CDS length")
	}
	pdu = strings.TrimSpace(pdu)
	if len(pdu) > 2*200 {
		return DeliveryReport{}, errors.New("+CDS pdu too long")
	}
	tp, err := gsm.UnmarshalTPDU([]string{length, pdu})
	if err != nil {
		return DeliveryReport{}, fmt.Errorf("decoding +CDS pdu: %v", err)
	}
	if tp.SmsType() != tpdu.SmsStatusReport {
		return DeliveryReport{}, fmt.Errorf("+CDS pdu is an %v, not a status report", tp.SmsType())
	}
	st := int(tp.ST)
	return DeliveryReport{
		Ref:        int(tp.MR),
		Status:     st,
		Delivered:  st < 0x20,
		Final:      statusFinal(st),
		Discharged: tp.DT.Time,
	}, nil
}

// decodeCDSText decodes a +CDS status report in text mode:
// "+CDS: <fo>,<mr>,[<ra>],[<tora>],<scts>,<dt>,<st>".
func decodeCDSText(line string) (DeliveryReport, error) {
	f, _ := fields(value(line, "+CDS"))
	if len(f) < 7 {
		return DeliveryReport{}, errors.New("short text-mode +CDS")
	}
	mr, err1 := strconv.Atoi(f[1])
	st, err2 := strconv.Atoi(f[len(f)-1])
	if err1 != nil || err2 != nil || mr < 0 || mr > 255 || st < 0 || st > 255 {
		return DeliveryReport{}, errors.New("bad text-mode +CDS fields")
	}
	r := DeliveryReport{Ref: mr, Status: st, Delivered: st < 0x20, Final: statusFinal(st)}
	if t, err := time.Parse("06/01/02,15:04:05", trimZone(f[len(f)-2])); err == nil {
		r.Discharged = t
	}
	return r, nil
}

// trimZone drops the "+zz" quarter-hour zone of a 27.005 time string.
func trimZone(s string) string {
	if len(s) > 17 {
		return s[:17]
	}
	return s
}

// urc is an unsolicited result code as the line scanner found it.
type urc struct {
	kind  string // "+CDS", "+CDS-text", "+CMGS", "+CREG", "prompt", "other"
	lines []string
}

// maxLine bounds the length of one line the scanner keeps; longer lines
// are cut (the AT layer's own scanner stops at 64 KiB).
const maxLine = 1024

// lineScanner splits the byte stream read from the modem into lines and
// recognises URCs that need more than one line (a PDU-mode +CDS is the
// header line followed by the PDU line). It sees every line, including the
// answers to commands, and is used by one goroutine.
type lineScanner struct {
	buf       []byte
	overflow  bool
	cdsHeader string // a +CDS: <length> line awaiting its PDU line
	emit      func(line string, u *urc)
}

// write feeds bytes read from the modem.
func (s *lineScanner) write(p []byte) {
	for _, c := range p {
		switch c {
		case '\r', '\n':
			s.flush()
		default:
			if len(s.buf) < maxLine {
				s.buf = append(s.buf, c)
			} else {
				s.overflow = true
			}
		}
		// The "> " prompt of +CMGS ends without a line break.
		if len(s.buf) == 2 && s.buf[0] == '>' && s.buf[1] == ' ' {
			s.flush()
		}
	}
}

func (s *lineScanner) flush() {
	if len(s.buf) == 0 {
		return
	}
	line := string(s.buf)
	s.buf = s.buf[:0]
	if s.overflow {
		s.overflow = false
		line += "..."
	}
	s.emit(line, s.classify(line))
}

// classify returns the URC that line completes, if any.
func (s *lineScanner) classify(line string) *urc {
	if s.cdsHeader != "" {
		h := s.cdsHeader
		s.cdsHeader = ""
		if isHex(line) {
			return &urc{kind: "+CDS", lines: []string{h, line}}
		}
		// Not a PDU: fall through and look at the line on its own.
	}
	switch {
	case line == "> ":
		return &urc{kind: "prompt", lines: []string{line}}
	case strings.HasPrefix(line, "+CDS:"):
		v := value(line, "+CDS")
		if _, err := strconv.Atoi(v); err == nil {
			s.cdsHeader = line
			return nil
		}
		return &urc{kind: "+CDS-text", lines: []string{line}}
	case strings.HasPrefix(line, "+CMGS:"):
		return &urc{kind: "+CMGS", lines: []string{line}}
	case strings.HasPrefix(line, "+CREG:"), strings.HasPrefix(line, "+CEREG:"), strings.HasPrefix(line, "+CGREG:"):
		return &urc{kind: "+CREG", lines: []string{line}}
	case looksLikeURC(line, ""):
		return &urc{kind: "other", lines: []string{line}}
	}
	return nil
}

func isHex(s string) bool {
	if len(s) == 0 || len(s)%2 != 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'A' || c > 'F') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
