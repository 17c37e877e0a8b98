package sim

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/warthog618/sms"
	"github.com/warthog618/sms/encoding/pdumode"
	"github.com/warthog618/sms/encoding/tpdu"
	"golang.org/x/sys/unix"

	"github.com/mfad/mfad/internal/testenv"
)

// Generous bounds for I/O on a loaded machine; no test waits this long
// unless it fails.
const (
	replyTimeout = 10 * time.Second
	// quietPeriod is how long a test listens to show that nothing comes.
	// Nothing comes early on a slow machine, so it cannot cause a false
	// failure.
	quietPeriod = 300 * time.Millisecond
)

const testNumber = "+447700900123"

var testTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// modemLogWriter routes log output to t.Log.
type modemLogWriter struct{ t testing.TB }

func (w modemLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func newTestModem(t testing.TB, opts ModemOptions) *Modem {
	t.Helper()
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(modemLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if opts.Now == nil {
		opts.Now = testenv.NewClock(testTime).Now
	}
	m, err := NewModem(opts)
	if err != nil {
		t.Fatalf("NewModem: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return m
}

// serialClient is a test's end of the serial line: the slave of the
// modem's pseudo-terminal, opened and set up as a serial port.
type serialClient struct {
	t       testing.TB
	f       *os.File
	pending string
}

func openClient(t testing.TB, path string) *serialClient {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("opening %s: %v", path, err)
	}
	tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		t.Fatalf("reading termios of %s: %v", path, err)
	}
	// Raw 8N1, as a serial library sets it.
	tio.Iflag &^= unix.ICRNL | unix.INLCR | unix.IGNCR | unix.IXON | unix.ISTRIP
	tio.Oflag &^= unix.OPOST
	tio.Lflag &^= unix.ECHO | unix.ICANON | unix.ISIG | unix.IEXTEN
	tio.Cflag = tio.Cflag&^(unix.CSIZE|unix.PARENB) | unix.CS8 | unix.CLOCAL | unix.CREAD
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, tio); err != nil {
		t.Fatalf("setting termios of %s: %v", path, err)
	}
	c := &serialClient{t: t, f: os.NewFile(uintptr(fd), path)}
	t.Cleanup(func() { c.f.Close() })
	return c
}

func (c *serialClient) write(s string) {
	c.t.Helper()
	if _, err := c.f.Write([]byte(s)); err != nil {
		c.t.Fatalf("writing %q: %v", s, err)
	}
}

// read reads until end finds the end of a reply in what was read and
// returns the reply, or returns everything read and the error after
// timeout.
func (c *serialClient) read(end func(string) int, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 4096)
	for {
		if n := end(c.pending); n >= 0 {
			r := c.pending[:n]
			c.pending = c.pending[n:]
			return r, nil
		}
		if err := c.f.SetReadDeadline(deadline); err != nil {
			return "", err
		}
		n, err := c.f.Read(buf)
		c.pending += string(buf[:n])
		if err != nil {
			r := c.pending
			c.pending = ""
			return r, err
		}
	}
}

// reply reads up to and including a final result code or a "> " prompt.
func (c *serialClient) reply() string {
	c.t.Helper()
	r, err := c.read(finalResult, replyTimeout)
	if err != nil {
		c.t.Fatalf("reading reply: %v (read %q)", err, r)
	}
	return r
}

// cmd sends a command line and returns the reply.
func (c *serialClient) cmd(line string) string {
	c.t.Helper()
	c.write(line + "\r")
	return c.reply()
}

// expect sends a command line and checks its reply.
func (c *serialClient) expect(line, want string) {
	c.t.Helper()
	if got := c.cmd(line); got != want {
		c.t.Errorf("%q: got %q, want %q", line, got, want)
	}
}

// expectSilence checks that nothing arrives for quietPeriod.
func (c *serialClient) expectSilence() {
	c.t.Helper()
	got, err := c.read(func(string) int { return -1 }, quietPeriod)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		c.t.Fatalf("reading: %v", err)
	}
	if got != "" {
		c.t.Errorf("got %q, want silence", got)
	}
}

// finalResult returns the end of the first final result code line or "> "
// prompt in s, or -1.
func finalResult(s string) int {
	off := 0
	for {
		if strings.HasPrefix(s[off:], "> ") {
			return off + 2
		}
		i := strings.Index(s[off:], "\r\n")
		if i < 0 {
			return -1
		}
		line := s[off : off+i]
		off += i + 2
		if line == "OK" || line == "ERROR" || strings.HasPrefix(line, "+CME ERROR:") ||
			strings.HasPrefix(line, "+CMS ERROR:") {
			return off
		}
	}
}

// infoReply returns the reply of a command with information lines and OK.
func infoReply(lines ...string) string {
	return "\r\n" + strings.Join(lines, "\r\n") + "\r\n\r\nOK\r\n"
}

const (
	okReply    = "\r\nOK\r\n"
	errorReply = "\r\nERROR\r\n"
)

func cmsReply(code int) string { return fmt.Sprintf("\r\n+CMS ERROR: %d\r\n", code) }

// quietClient opens a client and turns echo off.
func quietClient(t testing.TB, m *Modem) *serialClient {
	t.Helper()
	c := openClient(t, m.Path())
	c.expect("ATE0", "ATE0\r"+okReply)
	return c
}

func TestModemCommands(t *testing.T) {
	ucs2SCA := "002B003400340037" + strings.Repeat("0030", 9)
	type step struct{ cmd, want string }
	tests := []struct {
		name  string
		steps []step
	}{
		{"at", []step{{"AT", okReply}}},
		{"lower case", []step{{"at+csq", infoReply("+CSQ: 20,99")}}},
		{"spaces", []step{{"AT + C SQ", infoReply("+CSQ: 20,99")}}},
		{"ati", []step{{"ATI", infoReply("mfad", "simulated GSM modem", "Revision: mfad-sim 1.0")}}},
		{"gcap", []step{{"AT+GCAP", infoReply("+GCAP: +CGSM,+DS,+ES")}}},
		{"identity", []step{
			{"AT+CGMI", infoReply("mfad")},
			{"AT+GMI", infoReply("mfad")},
			{"AT+CGMM", infoReply("simulated GSM modem")},
			{"AT+GMM", infoReply("simulated GSM modem")},
			{"AT+CGMR", infoReply("mfad-sim 1.0")},
			{"AT+GMR", infoReply("mfad-sim 1.0")},
			{"AT+CGSN", infoReply("356938035643809")},
			{"AT+CIMI", infoReply("001010123456789")},
			{"AT+CGSN=?", okReply},
		}},
		{"several commands", []step{
			{"AT+CGMI;+CGMM", "\r\nmfad\r\n\r\nsimulated GSM modem\r\n" + okReply},
			{"ATE0V1Q0&C1&D2X4", okReply},
			{"ATS0=2S0?", infoReply("002")},
			{"ATS3?", infoReply("013")},
		}},
		{"unknown", []step{
			{"AT+FOO", errorReply},
			{"AT^CURC=0", errorReply},
			{"ATD123;", errorReply},
			{"AT+CSQ;+FOO;+CGMI", "\r\n+CSQ: 20,99\r\n" + errorReply},
			{"ATE5", errorReply},
			{`AT+CSCA="+44`, errorReply},
		}},
		{"cmee", []step{
			{"AT+CMEE?", infoReply("+CMEE: 0")},
			{`AT+CPIN="1234"`, errorReply},
			{"AT+CMEE=1", okReply},
			{`AT+CPIN="1234"`, "\r\n+CME ERROR: 3\r\n"},
			{"AT+CMEE=2", okReply},
			{`AT+CPIN="1234"`, "\r\n+CME ERROR: operation not allowed\r\n"},
			{"AT+CMEE=?", infoReply("+CMEE: (0-2)")},
			{"AT+CMEE=3", errorReply},
		}},
		{"cfun", []step{
			{"AT+CFUN?", infoReply("+CFUN: 1")},
			{"AT+CFUN=0", okReply},
			{"AT+CFUN?", infoReply("+CFUN: 0")},
			{"AT+CREG?", infoReply("+CREG: 0,0")},
			{"AT+COPS?", infoReply("+COPS: 0")},
			{"AT+CFUN=1", okReply},
			{"AT+CREG?", infoReply("+CREG: 0,1")},
			{"AT+CFUN=?", infoReply("+CFUN: (0,1,4),(0,1)")},
			{"AT+CFUN=2", errorReply},
		}},
		{"cpin", []step{{"AT+CPIN?", infoReply("+CPIN: READY")}}},
		{"probes", []step{
			{"AT+CHUP", okReply},
			{"AT+CHUP=?", okReply},
			{"AT+CBC", infoReply("+CBC: 0,100")},
			{"AT+CUSD=1;+CUSD?", infoReply("+CUSD: 1")},
			{`AT+CUSD=1,"*100#",15`, errorReply},
			{"AT+CPBS=?", infoReply(`+CPBS: ("SM")`)},
			{"AT+CPBS?", infoReply(`+CPBS: "SM",0,250`)},
			{`AT+CPBS="SM"`, okReply},
			{`AT+CPBS="ME"`, errorReply},
			{"AT+CPAS=?", infoReply("+CPAS: (0-5)")},
			{"AT+CNUM", okReply},
			{`AT+CCLK="24/01/01,00:00:00+00"`, okReply},
			{"AT+MODE=2", errorReply},
		}},
		{"registration", []step{
			{"AT+CREG?", infoReply("+CREG: 0,1")},
			{"AT+CREG=2", okReply},
			{"AT+CREG?", infoReply(`+CREG: 2,1,"00C3","0000139D",7`)},
			{"AT+CEREG?", infoReply("+CEREG: 0,1")},
			{"AT+CGREG=1;+CGREG?", infoReply("+CGREG: 1,1")},
			{"AT+CREG=?", infoReply("+CREG: (0-2)")},
			{"AT+CGATT?", infoReply("+CGATT: 1")},
		}},
		{"signal and operator", []step{
			{"AT+CSQ", infoReply("+CSQ: 20,99")},
			{"AT+CSQ=?", infoReply("+CSQ: (0-31,99),(0-7,99)")},
			{"AT+COPS?", infoReply(`+COPS: 0,0,"mfad-sim",7`)},
			{"AT+COPS=0", okReply},
			{"AT+COPS=3,2;+COPS?", infoReply(`+COPS: 0,2,"00101",7`)},
			{"AT+COPS=?", infoReply(`+COPS: (2,"mfad-sim","mfad-sim","00101",7),,(0-4),(0-2)`)},
			{`AT+COPS=1,0,"other"`, errorReply},
			{"AT+CPAS", infoReply("+CPAS: 0")},
			{"AT+CCLK?", infoReply(`+CCLK: "24/05/06,07:08:09+00"`)},
		}},
		{"sms settings", []step{
			{"AT+CMGF?", infoReply("+CMGF: 0")},
			{"AT+CMGF=1;+CMGF?", infoReply("+CMGF: 1")},
			{"AT+CMGF=?", infoReply("+CMGF: (0,1)")},
			{"AT+CMGF=2", errorReply},
			{"AT+CSCS?", infoReply(`+CSCS: "GSM"`)},
			{"AT+CSCS=?", infoReply(`+CSCS: ("GSM","UCS2","IRA","8859-1")`)},
			{`AT+CSCS="KOI8-R"`, errorReply},
			{"AT+CSCA?", infoReply(`+CSCA: "+447000000000",145`)},
			{`AT+CSCS="UCS2";+CSCA?`, infoReply(`+CSCA: "` + ucs2SCA + `",145`)},
			{`AT+CSCS="IRA";+CSCA="+441234";+CSCA?`, infoReply(`+CSCA: "+441234",145`)},
			{"AT+CSMP?", infoReply("+CSMP: 17,167,0,0")},
			{"AT+CSMP=49,167,0,8;+CSMP?", infoReply("+CSMP: 49,167,0,8")},
			{"AT+CNMI=2,1,0,1,0;+CNMI?", infoReply("+CNMI: 2,1,0,1,0")},
			{"AT+CNMI=?", infoReply("+CNMI: (0-3),(0-3),(0-3),(0-2),(0,1)")},
			{"AT+CNMI=4", errorReply},
			{"AT+CSMS=0", infoReply("+CSMS: 1,1,1")},
			{"AT+CSMS?", infoReply("+CSMS: 0,1,1,1")},
			{"AT+CMMS=2;+CMMS?", infoReply("+CMMS: 2")},
			{"AT+CSDH=1;+CSDH?", infoReply("+CSDH: 1")},
			{"AT+CNMA", cmsReply(340)},
		}},
		{"sms storage", []step{
			{"AT+CPMS?", infoReply(`+CPMS: "SM",0,30,"SM",0,30,"SM",0,30`)},
			{`AT+CPMS="ME","ME","ME"`, infoReply("+CPMS: 0,30,0,30,0,30")},
			{`AT+CPMS="SM"`, infoReply("+CPMS: 0,30")},
			{`AT+CPMS="XX"`, cmsReply(302)},
			{"AT+CMGL=4", okReply},
			{"AT+CMGL", okReply},
			{"AT+CMGL=7", cmsReply(304)},
			{`AT+CMGF=1;+CMGL="ALL"`, okReply},
			{"AT+CMGD=1", okReply},
			{"AT+CMGD=1,4", okReply},
			{"AT+CMGR=1", cmsReply(321)},
		}},
		{"cmgs parameters", []step{
			{"AT+CMGS=?", okReply},
			{"AT+CMGS=5", cmsReply(304)},
			{"AT+CMGS=165", cmsReply(304)},
			{"AT+CMGS=abc", cmsReply(304)},
			{`AT+CMGS="+4477"`, cmsReply(304)},
			{"AT+CMGF=1", okReply},
			{"AT+CMGS=12", cmsReply(305)},
			{`AT+CMGS="+44x77"`, cmsReply(305)},
			{`AT+CMGS="+4477",999`, cmsReply(305)},
		}},
		{"line editing", []step{
			{"hello\rAT", okReply},
			{"AT+FOO\x1bAT", okReply},
			{"AT+CSX\bQ", infoReply("+CSQ: 20,99")},
			{"A/", infoReply("+CSQ: 20,99")},
		}},
		{"overlong line", []step{
			{"AT" + strings.Repeat("E0", maxCommandLine), errorReply},
			{"AT", okReply},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestModem(t, ModemOptions{})
			c := quietClient(t, m)
			for _, s := range tc.steps {
				c.expect(s.cmd, s.want)
			}
		})
	}
}

// expectRaw sends s and checks that exactly want comes back.
func (c *serialClient) expectRaw(s, want string) {
	c.t.Helper()
	c.write(s)
	got, err := c.read(func(p string) int {
		if len(p) >= len(want) {
			return len(want)
		}
		return -1
	}, replyTimeout)
	if err != nil {
		c.t.Fatalf("%q: reading: %v (read %q)", s, err, got)
	}
	if got != want {
		c.t.Errorf("%q: got %q, want %q", s, got, want)
	}
}

// urc reads one unsolicited result code: "\r\n<line>\r\n", or for +CDS in
// PDU mode two lines.
func (c *serialClient) urc() string {
	c.t.Helper()
	r, err := c.read(func(s string) int {
		if !strings.HasPrefix(s, "\r\n") {
			return -1
		}
		lines := 1
		if strings.HasPrefix(s, "\r\n+CDS: ") && !strings.Contains(s, ",") {
			lines = 2
		}
		off := 2
		for range lines {
			i := strings.Index(s[off:], "\r\n")
			if i < 0 {
				return -1
			}
			off += i + 2
		}
		return off
	}, replyTimeout)
	if err != nil {
		c.t.Fatalf("reading urc: %v (read %q)", err, r)
	}
	return r
}

// drain discards whatever arrives until the line is quiet.
func (c *serialClient) drain() {
	c.read(func(string) int { return -1 }, quietPeriod)
}

// sendPDU sends one PDU mode message (the SMSC address smsc, then tp) and
// returns the reply. The prompt may come with URC noise.
func (c *serialClient) sendPDU(smsc, tp []byte) string {
	c.t.Helper()
	if got, _ := stripNoise(c.cmd(fmt.Sprintf("AT+CMGS=%d", len(tp)))); got != "\r\n> " {
		c.t.Fatalf("AT+CMGS=%d: got %q, want the prompt", len(tp), got)
	}
	c.write(strings.ToUpper(hex.EncodeToString(append(append([]byte(nil), smsc...), tp...))) + "\x1a")
	return c.reply()
}

// encodePDUs encodes msg to `to` as SMS-SUBMIT TPDUs.
func encodePDUs(t testing.TB, to, msg string, opts ...sms.EncoderOption) [][]byte {
	t.Helper()
	pdus, err := sms.Encode([]byte(msg), append([]sms.EncoderOption{sms.To(to)}, opts...)...)
	if err != nil {
		t.Fatalf("encoding %q: %v", msg, err)
	}
	return marshalPDUs(t, pdus)
}

func marshalPDUs(t testing.TB, pdus []tpdu.TPDU) [][]byte {
	t.Helper()
	var out [][]byte
	for _, p := range pdus {
		b, err := p.MarshalBinary()
		if err != nil {
			t.Fatalf("marshalling tpdu: %v", err)
		}
		out = append(out, b)
	}
	return out
}

// ucs2Segments encodes msg as UCS-2 TPDUs with a 16-bit concatenation
// reference.
func ucs2Segments(t testing.TB, to, msg string) [][]byte {
	t.Helper()
	tmpl, err := tpdu.NewSubmit(tpdu.WithDA(tpdu.NewAddress(tpdu.FromNumber(to))))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SetDCS(byte(tpdu.DcsUCS2Data))
	ud := make([]byte, 0, 2*len(msg))
	for _, u := range utf16.Encode([]rune(msg)) {
		ud = append(ud, byte(u>>8), byte(u))
	}
	return marshalPDUs(t, tmpl.Segment(ud, tpdu.With16BitConcatRef, tpdu.WithConcatRef(&sms.Counter{})))
}

func TestModemEcho(t *testing.T) {
	m := newTestModem(t, ModemOptions{})
	c := openClient(t, m.Path())
	c.expect("AT", "AT\r"+okReply)
	c.expect("AT+CSQ", "AT+CSQ\r"+infoReply("+CSQ: 20,99"))
	c.expect("ATE0", "ATE0\r"+okReply)
	c.expect("AT", okReply)
	c.expect("ATZ", okReply)
	c.expect("AT", "AT\r"+okReply)
	c.expect("ATE0", "ATE0\r"+okReply)
	c.expect("AT&F", okReply)
	c.expect("AT", "AT\r"+okReply)
	c.expect("ATE", "ATE\r"+okReply)
	c.expect("ATE1", okReply)
	// Echo is byte by byte, garbage and control characters included
	// (but not ESC).
	c.expect("xy\x1bAT", "xyAT\r"+okReply)
}

func TestModemNumericAndQuiet(t *testing.T) {
	m := newTestModem(t, ModemOptions{})
	c := quietClient(t, m)
	c.expectRaw("ATV0\r", "0\r")
	c.expectRaw("AT+CSQ\r", "+CSQ: 20,99\r\n0\r")
	c.expectRaw("AT+FOO\r", "4\r")
	c.expectRaw("ATV1\r", okReply)
	c.write("ATQ1\r")
	c.expectSilence()
	c.expectRaw("AT+CSQ\r", "\r\n+CSQ: 20,99\r\n")
	c.expectRaw("ATQ0\r", okReply)
}

func TestModemPIN(t *testing.T) {
	cmeResult := func(code int) string { return fmt.Sprintf("\r\n+CME ERROR: %d\r\n", code) }
	m := newTestModem(t, ModemOptions{PIN: "1234", PUK: "87654321"})
	c := quietClient(t, m)
	c.expect("AT+CMEE=1;+CREG=1", okReply)
	c.expect("AT+CPIN?", infoReply("+CPIN: SIM PIN"))
	c.expect("AT+CIMI", cmeResult(11))
	c.expect("AT+CNUM", cmeResult(11))
	c.expect("AT+CREG?", infoReply("+CREG: 1,0"))
	c.expect("AT+COPS?", infoReply("+COPS: 0"))
	c.expect("AT+CMGS=20", cmsReply(311))
	c.expect("AT+CSCA?", cmsReply(311))
	c.expect("AT+CMGL=4", cmsReply(311))
	c.expect("AT+CSQ", infoReply("+CSQ: 20,99"))
	c.expect("AT+CGSN", infoReply("356938035643809"))
	for i := range pinAttempts {
		c.expect(`AT+CPIN="0000"`, cmeResult(16))
		want := "+CPIN: SIM PIN"
		if i == pinAttempts-1 {
			want = "+CPIN: SIM PUK"
		}
		c.expect("AT+CPIN?", infoReply(want))
	}
	c.expect("AT+CIMI", cmeResult(12))
	c.expect("AT+CMGS=20", cmsReply(312))
	c.expect(`AT+CPIN="1234"`, cmeResult(12))
	c.expect(`AT+CPIN="11111111","4321"`, cmeResult(16))
	c.expect(`AT+CPIN="87654321","43x1"`, cmeResult(16))
	c.expect(`AT+CPIN="87654321","4321"`, okReply)
	if got := c.urc(); got != "\r\n+CREG: 1\r\n" {
		t.Errorf("after unlocking: got %q, want +CREG: 1", got)
	}
	c.expect("AT+CPIN?", infoReply("+CPIN: READY"))
	c.expect("AT+CREG?", infoReply("+CREG: 1,1"))
	c.expect("AT+CIMI", infoReply("001010123456789"))
	c.expect(`AT+CPIN="4321"`, cmeResult(3))

	m.SetPINRequired("9999")
	if got := c.urc(); got != "\r\n+CREG: 0\r\n" {
		t.Errorf("after locking: got %q, want +CREG: 0", got)
	}
	c.expect("AT+CPIN?", infoReply("+CPIN: SIM PIN"))
	c.expect(`AT+CPIN="9999"`, okReply)
	c.urc()
	m.SetPINRequired("")
	c.expect("AT+CPIN?", infoReply("+CPIN: READY"))

	t.Run("puk exhausted", func(t *testing.T) {
		m := newTestModem(t, ModemOptions{PIN: "1234"})
		c := quietClient(t, m)
		c.expect("AT+CMEE=2", okReply)
		for range pinAttempts {
			c.expect(`AT+CPIN="0000"`, "\r\n+CME ERROR: incorrect password\r\n")
		}
		for range pukAttempts {
			c.expect(`AT+CPIN="00000000","1111"`, "\r\n+CME ERROR: incorrect password\r\n")
		}
		c.expect("AT+CPIN?", "\r\n+CME ERROR: SIM failure\r\n")
		c.expect(`AT+CPIN="12345678","1111"`, "\r\n+CME ERROR: SIM failure\r\n")
		c.expect("AT+CMGS=20", cmsReply(313))
	})
}

func TestModemSendPDU(t *testing.T) {
	longGSM := strings.Repeat("0123456789", 40)
	longUCS2 := strings.Repeat("Код 🔑 ", 30)
	national := func(t testing.TB) [][]byte {
		tmpl, err := tpdu.NewSubmit(tpdu.WithDA(tpdu.Address{TOA: 0x81, Addr: "07700900123"}))
		if err != nil {
			t.Fatal(err)
		}
		return encodePDUs(t, testNumber, "national", sms.WithTemplate(*tmpl))
	}
	smsc := []byte{0x07, 0x91, 0x44, 0x07, 0x00, 0x00, 0x00, 0xf0} // +447000000000
	tests := []struct {
		name    string
		pdus    func(t testing.TB) [][]byte
		smsc    []byte
		order   []int // order of sending; nil = in order
		want    SMS
		wantErr bool
	}{
		{
			name: "gsm7",
			pdus: func(t testing.TB) [][]byte { return encodePDUs(t, testNumber, "Your mfad code is 123456") },
			want: SMS{To: testNumber, Text: "Your mfad code is 123456", Parts: 1, Encoding: "gsm7"},
		},
		{
			name: "gsm7 with smsc",
			pdus: func(t testing.TB) [][]byte { return encodePDUs(t, testNumber, "code 42") },
			smsc: smsc,
			want: SMS{To: testNumber, Text: "code 42", Parts: 1, Encoding: "gsm7"},
		},
		{
			name: "gsm7 extension table",
			pdus: func(t testing.TB) [][]byte { return encodePDUs(t, testNumber, "Code {123} costs €5 [ok]") },
			want: SMS{To: testNumber, Text: "Code {123} costs €5 [ok]", Parts: 1, Encoding: "gsm7"},
		},
		{
			name: "national number",
			pdus: national,
			want: SMS{To: "07700900123", Text: "national", Parts: 1, Encoding: "gsm7"},
		},
		{
			name: "gsm7 concatenated",
			pdus: func(t testing.TB) [][]byte { return encodePDUs(t, testNumber, longGSM) },
			want: SMS{To: testNumber, Text: longGSM, Parts: 3, Encoding: "gsm7"},
		},
		{
			name:  "gsm7 concatenated out of order",
			pdus:  func(t testing.TB) [][]byte { return encodePDUs(t, testNumber, longGSM) },
			order: []int{2, 0, 1},
			want:  SMS{To: testNumber, Text: longGSM, Parts: 3, Encoding: "gsm7"},
		},
		{
			name: "ucs2",
			pdus: func(t testing.TB) [][]byte { return encodePDUs(t, testNumber, "Ваш код: 123456") },
			want: SMS{To: testNumber, Text: "Ваш код: 123456", Parts: 1, Encoding: "ucs2"},
		},
		{
			name: "ucs2 concatenated, 16-bit reference, surrogates",
			pdus: func(t testing.TB) [][]byte { return ucs2Segments(t, testNumber, longUCS2) },
			want: SMS{To: testNumber, Text: longUCS2, Parts: 4, Encoding: "ucs2"},
		},
		{
			name: "8bit",
			pdus: func(t testing.TB) [][]byte { return encodePDUs(t, testNumber, "8-bit data", sms.As8Bit) },
			want: SMS{To: testNumber, Text: "8-bit data", Parts: 1, Encoding: "8bit"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestModem(t, ModemOptions{})
			c := quietClient(t, m)
			pdus := tc.pdus(t)
			if len(pdus) != tc.want.Parts {
				t.Fatalf("encoded %d parts, want %d", len(pdus), tc.want.Parts)
			}
			order := tc.order
			if order == nil {
				for i := range pdus {
					order = append(order, i)
				}
			}
			smsc := tc.smsc
			if smsc == nil {
				smsc = []byte{0} // the modem's default SMSC
			}
			for i, k := range order {
				if got, want := c.sendPDU(smsc, pdus[k]), infoReply(fmt.Sprintf("+CMGS: %d", i+1)); got != want {
					t.Fatalf("part %d: got %q, want %q", k+1, got, want)
				}
				if i < len(order)-1 && len(m.Inbox()) != 0 {
					t.Fatalf("message delivered after %d of %d parts", i+1, len(pdus))
				}
			}
			want := tc.want
			want.Mode, want.Ref, want.Time = "pdu", len(pdus), testTime
			ctx, cancel := context.WithTimeout(context.Background(), replyTimeout)
			defer cancel()
			got, err := m.WaitSMS(ctx, want.To)
			if err != nil {
				t.Fatalf("WaitSMS: %v", err)
			}
			if got != want {
				t.Errorf("got %+v\nwant %+v", got, want)
			}
			if inbox := m.Inbox(); len(inbox) != 1 || inbox[0] != want {
				t.Errorf("Inbox() = %+v, want [%+v]", inbox, want)
			}
			if n := m.Sends(); n != len(pdus) {
				t.Errorf("Sends() = %d, want %d", n, len(pdus))
			}
		})
	}
}

func TestModemSendText(t *testing.T) {
	ucs2Hex := func(s string) string {
		var b strings.Builder
		for _, u := range utf16.Encode([]rune(s)) {
			fmt.Fprintf(&b, "%04X", u)
		}
		return b.String()
	}
	tests := []struct {
		name  string
		setup []string // command lines, each answered OK
		cmgs  string
		text  []string // lines of text, each but the last ended by CR
		want  SMS
		reply string // when not +CMGS: 1
	}{
		{
			name: "gsm",
			cmgs: `AT+CMGS="+447700900123"`,
			text: []string{"Your mfad code is 123456"},
			want: SMS{To: testNumber, Text: "Your mfad code is 123456", Encoding: "gsm7"},
		},
		{
			name: "gsm alphabet",
			cmgs: `AT+CMGS="+447700900123",145`,
			text: []string{"a\x00b\x02"},
			want: SMS{To: testNumber, Text: "a@b$", Encoding: "gsm7"},
		},
		{
			name: "national",
			cmgs: `AT+CMGS="07700900123",129`,
			text: []string{"code"},
			want: SMS{To: "07700900123", Text: "code", Encoding: "gsm7"},
		},
		{
			name: "international type without plus",
			cmgs: `AT+CMGS="447700900123",145`,
			text: []string{"code"},
			want: SMS{To: testNumber, Text: "code", Encoding: "gsm7"},
		},
		{
			name: "several lines",
			cmgs: `AT+CMGS="+447700900123"`,
			text: []string{"line one", "line two"},
			want: SMS{To: testNumber, Text: "line one\nline two", Encoding: "gsm7"},
		},
		{
			name:  "ira",
			setup: []string{`AT+CSCS="IRA"`},
			cmgs:  `AT+CMGS="+447700900123"`,
			text:  []string{"a@b_c"},
			want:  SMS{To: testNumber, Text: "a@b_c", Encoding: "gsm7"},
		},
		{
			name:  "ucs2 character set",
			setup: []string{`AT+CSCS="UCS2"`},
			cmgs:  `AT+CMGS="` + ucs2Hex(testNumber) + `"`,
			text:  []string{ucs2Hex("Ändern é 123")},
			want:  SMS{To: testNumber, Text: "Ändern é 123", Encoding: "gsm7"},
		},
		{
			name:  "ucs2 data coding",
			setup: []string{"AT+CSMP=17,167,0,8"},
			cmgs:  `AT+CMGS="+447700900123"`,
			text:  []string{ucs2Hex("Ваш код: 123456 🔑")},
			want:  SMS{To: testNumber, Text: "Ваш код: 123456 🔑", Encoding: "ucs2"},
		},
		{
			name:  "8-bit data coding",
			setup: []string{"AT+CSMP=17,167,0,4"},
			cmgs:  `AT+CMGS="+447700900123"`,
			text:  []string{hex.EncodeToString([]byte("raw"))},
			want:  SMS{To: testNumber, Text: "raw", Encoding: "8bit"},
		},
		{
			name:  "too long",
			cmgs:  `AT+CMGS="+447700900123"`,
			text:  []string{strings.Repeat("x", 161)},
			reply: cmsReply(305),
		},
		{
			name:  "not in character set",
			cmgs:  `AT+CMGS="+447700900123"`,
			text:  []string{"caf\xc3\xa9"},
			reply: cmsReply(305),
		},
		{
			name:  "not in gsm alphabet",
			setup: []string{`AT+CSCS="UCS2"`},
			cmgs:  `AT+CMGS="` + ucs2Hex(testNumber) + `"`,
			text:  []string{ucs2Hex("Код")},
			reply: cmsReply(305),
		},
		{
			name:  "bad hex",
			setup: []string{"AT+CSMP=17,167,0,8"},
			cmgs:  `AT+CMGS="+447700900123"`,
			text:  []string{"04"},
			reply: cmsReply(305),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestModem(t, ModemOptions{})
			c := quietClient(t, m)
			c.expect("AT+CMGF=1", okReply)
			for _, s := range tc.setup {
				c.expect(s, okReply)
			}
			c.expect(tc.cmgs, "\r\n> ")
			for _, line := range tc.text[:len(tc.text)-1] {
				c.expect(line, "\r\n> ")
			}
			reply := tc.reply
			if reply == "" {
				reply = infoReply("+CMGS: 1")
			}
			c.write(tc.text[len(tc.text)-1] + "\x1a")
			if got := c.reply(); got != reply {
				t.Fatalf("got %q, want %q", got, reply)
			}
			var want []SMS
			if tc.reply == "" {
				w := tc.want
				w.Parts, w.Mode, w.Ref, w.Time = 1, "text", 1, testTime
				want = append(want, w)
			}
			if got := m.Inbox(); !equalSMS(got, want) {
				t.Errorf("Inbox() = %+v, want %+v", got, want)
			}
		})
	}

	t.Run("echo", func(t *testing.T) {
		m := newTestModem(t, ModemOptions{})
		c := openClient(t, m.Path())
		c.expect("AT+CMGF=1", "AT+CMGF=1\r"+okReply)
		c.expect(`AT+CMGS="+447700900123"`, `AT+CMGS="+447700900123"`+"\r\r\n> ")
		c.write("hi\x1a")
		if got, want := c.reply(), "hi"+infoReply("+CMGS: 1"); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})
}

func equalSMS(a, b []SMS) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestModemMalformedPDU(t *testing.T) {
	good := encodePDUs(t, testNumber, "code 123456")[0]
	deliver := encodePDUs(t, testNumber, "code", sms.AsDeliver)[0]
	noDA := append([]byte{0x01, 0x00, 0x00, 0x91, 0x00, 0x00}, good[len(good)-9:]...)
	tests := []struct {
		name     string
		declared int
		hex      string
	}{
		{"not hex", len(good), "00" + strings.Repeat("ZZ", len(good))},
		{"odd length", len(good), "00" + hex.EncodeToString(good) + "1"},
		{"length mismatch", len(good) + 1, "00" + hex.EncodeToString(good)},
		{"short declared", len(good) - 1, "00" + hex.EncodeToString(good)},
		{"truncated", len(good) - 1, "00" + hex.EncodeToString(good[:len(good)-1])},
		{"bad smsc length", len(good), "0F" + hex.EncodeToString(good)},
		{"deliver", len(deliver), "00" + hex.EncodeToString(deliver)},
		{"no destination", len(noDA), "00" + hex.EncodeToString(noDA)},
		{"empty", len(good), ""},
		{"overflow", len(good), strings.Repeat("00", maxSMSInput)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestModem(t, ModemOptions{})
			c := quietClient(t, m)
			c.expect(fmt.Sprintf("AT+CMGS=%d", tc.declared), "\r\n> ")
			c.write(tc.hex + "\x1a")
			if got := c.reply(); got != cmsReply(304) {
				t.Errorf("got %q, want +CMS ERROR: 304", got)
			}
			c.expect("AT", okReply)
			if n := m.Sends(); n != 0 {
				t.Errorf("Sends() = %d, want 0", n)
			}
			if got := m.Inbox(); len(got) != 0 {
				t.Errorf("Inbox() = %+v, want empty", got)
			}
			// The next good message gets the first reference.
			if got := c.sendPDU([]byte{0}, good); got != infoReply("+CMGS: 1") {
				t.Errorf("good message after a bad one: got %q", got)
			}
		})
	}

	t.Run("escape cancels", func(t *testing.T) {
		m := newTestModem(t, ModemOptions{})
		c := quietClient(t, m)
		c.expect(fmt.Sprintf("AT+CMGS=%d", len(good)), "\r\n> ")
		c.write("00" + hex.EncodeToString(good) + "\x1b")
		if got := c.reply(); got != okReply {
			t.Errorf("got %q, want OK", got)
		}
		c.expect("AT", okReply)
		if n := m.Sends(); n != 0 {
			t.Errorf("Sends() = %d, want 0", n)
		}
	})
}

func TestModemDeliveryReports(t *testing.T) {
	withSRR := func(t testing.TB) []byte {
		p, err := sms.Encode([]byte("code 123456"), sms.To(testNumber))
		if err != nil {
			t.Fatal(err)
		}
		p[0].FirstOctet |= tpdu.FoSRR
		return marshalPDUs(t, p)[0]
	}
	t.Run("pdu", func(t *testing.T) {
		m := newTestModem(t, ModemOptions{DeliveryReports: true})
		c := quietClient(t, m)
		c.expect("AT+CNMI=2,1,0,1,0", okReply)
		c.expect("AT+CMGS=x", cmsReply(304)) // mr is not used by failures
		if got := c.sendPDU([]byte{0}, withSRR(t)); got != infoReply("+CMGS: 1") {
			t.Fatalf("got %q", got)
		}
		urc := c.urc()
		head, pduHex, found := strings.Cut(strings.TrimSpace(urc), "\r\n")
		if !found || !strings.HasPrefix(head, "+CDS: ") {
			t.Fatalf("got %q, want +CDS URC", urc)
		}
		pdu, err := pdumode.UnmarshalHexString(pduHex)
		if err != nil {
			t.Fatalf("decoding +CDS pdu: %v", err)
		}
		if head != fmt.Sprintf("+CDS: %d", len(pdu.TPDU)) {
			t.Errorf("+CDS length: got %q for a %d octet tpdu", head, len(pdu.TPDU))
		}
		if pdu.SMSC.Number() != "+447000000000" {
			t.Errorf("smsc = %q", pdu.SMSC.Number())
		}
		st, err := sms.Unmarshal(pdu.TPDU, sms.AsMT)
		if err != nil {
			t.Fatalf("decoding status report: %v", err)
		}
		if st.SmsType() != tpdu.SmsStatusReport || st.MR != 1 || st.ST != 0 ||
			st.RA.Number() != testNumber || !st.SCTS.Equal(testTime) || !st.DT.Equal(testTime) {
			t.Errorf("status report = %v mr %d st %d ra %q scts %v dt %v",
				st.SmsType(), st.MR, st.ST, st.RA.Number(), st.SCTS, st.DT)
		}
		// No report without TP-SRR.
		if got := c.sendPDU([]byte{0}, encodePDUs(t, testNumber, "x")[0]); got != infoReply("+CMGS: 2") {
			t.Fatalf("got %q", got)
		}
		// None with ds=0.
		c.expect("AT+CNMI=2,1,0,0,0", okReply)
		if got := c.sendPDU([]byte{0}, withSRR(t)); got != infoReply("+CMGS: 3") {
			t.Fatalf("got %q", got)
		}
		c.expectSilence()
	})
	t.Run("text", func(t *testing.T) {
		m := newTestModem(t, ModemOptions{DeliveryReports: true})
		c := quietClient(t, m)
		c.expect("AT+CMGF=1;+CNMI=2,1,0,1,0;+CSMP=49,167,0,0", okReply)
		c.expect(`AT+CMGS="+447700900123"`, "\r\n> ")
		c.write("code\x1a")
		if got := c.reply(); got != infoReply("+CMGS: 1") {
			t.Fatalf("got %q", got)
		}
		want := "\r\n" + `+CDS: 6,1,"+447700900123",145,"24/05/06,07:08:09+00","24/05/06,07:08:09+00",0` + "\r\n"
		if got := c.urc(); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		m := newTestModem(t, ModemOptions{})
		c := quietClient(t, m)
		c.expect("AT+CNMI=2,1,0,1,0", okReply)
		if got := c.sendPDU([]byte{0}, withSRR(t)); got != infoReply("+CMGS: 1") {
			t.Fatalf("got %q", got)
		}
		c.expectSilence()
	})
}

func TestModemFailSends(t *testing.T) {
	m := newTestModem(t, ModemOptions{})
	c := quietClient(t, m)
	pdu := encodePDUs(t, testNumber, "code 123456")[0]
	m.FailSends(2, 38)
	for range 2 {
		if got := c.sendPDU([]byte{0}, pdu); got != cmsReply(38) {
			t.Fatalf("got %q, want +CMS ERROR: 38", got)
		}
	}
	if got := c.sendPDU([]byte{0}, pdu); got != infoReply("+CMGS: 1") {
		t.Fatalf("after the failures: got %q", got)
	}
	m.FailSends(-1, 0)
	for range 3 {
		if got := c.sendPDU([]byte{0}, pdu); got != cmsReply(500) {
			t.Fatalf("got %q, want +CMS ERROR: 500", got)
		}
	}
	m.Reset()
	if got := c.sendPDU([]byte{0}, pdu); got != infoReply("+CMGS: 2") {
		t.Fatalf("after Reset: got %q", got)
	}
	if n, inbox := m.Sends(), m.Inbox(); n != 2 || len(inbox) != 2 {
		t.Errorf("Sends() = %d, %d messages; want 2, 2", n, len(inbox))
	}
}

func TestModemRegistration(t *testing.T) {
	m := newTestModem(t, ModemOptions{})
	c := quietClient(t, m)
	pdu := encodePDUs(t, testNumber, "code 123456")[0]
	c.expect("AT+CREG=1;+CEREG=2", okReply)
	for _, tc := range []struct {
		stat    int
		urcs    []string
		send    string
		cops    string
		creg    string
		cgattOn bool
	}{
		{2, []string{"+CREG: 2", "+CEREG: 2"}, cmsReply(331), "+COPS: 0", "+CREG: 1,2", false},
		{3, []string{"+CREG: 3", "+CEREG: 3"}, cmsReply(331), "+COPS: 0", "+CREG: 1,3", false},
		{0, []string{"+CREG: 0", "+CEREG: 0"}, cmsReply(331), "+COPS: 0", "+CREG: 1,0", false},
		{5, []string{"+CREG: 5", `+CEREG: 5,"00C3","0000139D",7`}, infoReply("+CMGS: 1"),
			`+COPS: 0,0,"mfad-sim",7`, "+CREG: 1,5", true},
		{1, []string{"+CREG: 1", `+CEREG: 1,"00C3","0000139D",7`}, infoReply("+CMGS: 2"),
			`+COPS: 0,0,"mfad-sim",7`, "+CREG: 1,1", true},
	} {
		m.SetRegistered(tc.stat)
		for _, u := range tc.urcs {
			if got := c.urc(); got != "\r\n"+u+"\r\n" {
				t.Errorf("stat %d: got %q, want %q", tc.stat, got, u)
			}
		}
		if got := c.sendPDU([]byte{0}, pdu); got != tc.send {
			t.Errorf("stat %d: send: got %q, want %q", tc.stat, got, tc.send)
		}
		c.expect("AT+COPS?", infoReply(tc.cops))
		c.expect("AT+CREG?", infoReply(tc.creg))
	}
	// The same state again is no change: no URC.
	m.SetRegistered(1)
	c.expectSilence()
	m.SetRegistered(9)
	c.expect("AT+CREG?", infoReply("+CREG: 1,1"))
}

func TestModemDelays(t *testing.T) {
	pdu := encodePDUs(t, testNumber, "code 123456")[0]
	t.Run("reply", func(t *testing.T) {
		m := newTestModem(t, ModemOptions{})
		c := quietClient(t, m)
		m.SetReplyDelay(time.Second)
		c.write("AT+CSQ\r")
		c.expectSilence()
		if got := c.reply(); got != infoReply("+CSQ: 20,99") {
			t.Errorf("got %q", got)
		}
		m.SetReplyDelay(0)
		c.expect("AT", okReply)
	})
	t.Run("reply keeps echo", func(t *testing.T) {
		m := newTestModem(t, ModemOptions{})
		c := openClient(t, m.Path())
		m.SetReplyDelay(time.Second)
		c.expectRaw("AT\r", "AT\r")
		c.expectSilence()
		if got := c.reply(); got != okReply {
			t.Errorf("got %q", got)
		}
	})
	t.Run("send", func(t *testing.T) {
		m := newTestModem(t, ModemOptions{SendDelay: time.Second})
		c := quietClient(t, m)
		c.expect(fmt.Sprintf("AT+CMGS=%d", len(pdu)), "\r\n> ")
		c.write("00" + hex.EncodeToString(pdu) + "\x1a")
		c.expectSilence()
		if got := c.reply(); got != infoReply("+CMGS: 1") {
			t.Errorf("got %q", got)
		}
		// Other commands are not slowed down.
		m.FailSends(1, 42)
		c.expect("AT", okReply)
	})
}

// waitConsumed waits until the modem has read n bytes of input in all.
func waitConsumed(t testing.TB, m *Modem, n int) {
	t.Helper()
	deadline := time.Now().Add(replyTimeout)
	for {
		m.mu.Lock()
		got := m.dev.consumed
		m.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("modem consumed %d bytes, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestModemWedge(t *testing.T) {
	m := newTestModem(t, ModemOptions{})
	c := quietClient(t, m) // 5 bytes
	m.Wedge(true)
	c.write("AT\r")
	c.write("AT+CMGF=1\r")
	waitConsumed(t, m, 5+3+10)
	m.InjectURC("RING")
	c.expectSilence()
	m.Wedge(false)
	c.expect("AT+CMGF?", infoReply("+CMGF: 0"))
	c.expectSilence()

	// A reply pending when the modem wedges is lost.
	m.SetReplyDelay(time.Second)
	c.write("AT\r")
	waitConsumed(t, m, 5+3+10+9+3)
	m.Wedge(true)
	m.Reset()
	c.expect("AT", okReply) // comes after the lost reply's delay
	c.expectSilence()
}

func TestModemURCs(t *testing.T) {
	m := newTestModem(t, ModemOptions{})
	c := quietClient(t, m)
	m.InjectURC("RING")
	if got := c.urc(); got != "\r\nRING\r\n" {
		t.Errorf("idle: got %q", got)
	}
	// At a prompt URCs wait for the answer.
	pdu := encodePDUs(t, testNumber, "code")[0]
	c.expect(fmt.Sprintf("AT+CMGS=%d", len(pdu)), "\r\n> ")
	m.InjectURC(`+CMTI: "SM",3`)
	c.expectSilence()
	c.write("00" + hex.EncodeToString(pdu) + "\x1a")
	if got := c.reply(); got != infoReply("+CMGS: 1") {
		t.Errorf("got %q", got)
	}
	if got := c.urc(); got != "\r\n+CMTI: \"SM\",3\r\n" {
		t.Errorf("after the prompt: got %q", got)
	}
	// During a partial command line too.
	c.write("AT+CS")
	waitConsumed(t, m, 5+len(fmt.Sprintf("AT+CMGS=%d\r", len(pdu)))+2*len(pdu)+3+5)
	m.InjectURC("RING")
	c.expectSilence()
	if got, want := c.cmd("Q"), infoReply("+CSQ: 20,99")+"\r\nRING\r\n"; got+c.urc() != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// noiseLine matches the lines of URC noise.
var noiseLine = regexp.MustCompile(`^(RING|\^RSSI: 12|\+CIEV: 2,3|\+CMTI: "SM",\d+|\+CREG: \d)$`)

func isNoise(line string) bool { return noiseLine.MatchString(line) }

// stripNoise removes URC noise from a reply and counts it.
func stripNoise(s string) (string, int) {
	n := 0
	for {
		found := false
		for off := 0; ; {
			i := strings.Index(s[off:], "\r\n")
			if i < 0 {
				break
			}
			start := off + i
			j := strings.Index(s[start+2:], "\r\n")
			if j < 0 {
				break
			}
			if isNoise(s[start+2 : start+2+j]) {
				s = s[:start] + s[start+2+j+2:]
				n++
				found = true
				break
			}
			off = start + 2
		}
		if !found {
			return s, n
		}
	}
}

func TestModemURCNoise(t *testing.T) {
	m := newTestModem(t, ModemOptions{})
	c := quietClient(t, m)
	c.expect("AT+CREG=1", okReply)
	m.SetURCNoise(true)
	noise := 0
	for range 12 {
		got, n := stripNoise(c.cmd("AT+CREG?"))
		noise += n
		if got != infoReply("+CREG: 1,1") {
			t.Errorf("got %q without noise", got)
		}
	}
	pdu := encodePDUs(t, testNumber, "code")[0]
	got, n := stripNoise(c.sendPDU([]byte{0}, pdu))
	noise += n
	if got != infoReply("+CMGS: 1") {
		t.Errorf("send: got %q without noise", got)
	}
	// Every reply brings one, before or after it; the one after the last
	// AT+CREG? reply came with the uncounted prompt.
	if noise < 11 {
		t.Errorf("%d noise URCs with 12 replies, want at least 11", noise)
	}
	m.SetURCNoise(false)
	c.drain()
	c.expect("AT", okReply)
	c.expectSilence()
}

func TestModemVanishReappear(t *testing.T) {
	link := filepath.Join(t.TempDir(), "by-id-modem")
	m := newTestModem(t, ModemOptions{Link: link, PIN: "1234"})
	first, err := os.Readlink(link)
	if err != nil || !strings.HasPrefix(first, "/dev/pts/") {
		t.Fatalf("link: %q, %v", first, err)
	}
	if m.Path() != link {
		t.Errorf("Path() = %q, want %q", m.Path(), link)
	}
	c := quietClient(t, m)
	c.expect(`AT+CPIN="1234"`, okReply)
	if got := c.sendPDU([]byte{0}, encodePDUs(t, testNumber, "before")[0]); got != infoReply("+CMGS: 1") {
		t.Fatalf("got %q", got)
	}

	m.Vanish()
	if _, err := os.Lstat(link); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("link after Vanish: %v, want not exist", err)
	}
	if _, err := os.Stat(first); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("device after Vanish: %v, want not exist", err)
	}
	if got, err := c.read(func(string) int { return -1 }, replyTimeout); got != "" ||
		errors.Is(err, os.ErrDeadlineExceeded) || err == nil {
		t.Errorf("read after Vanish: %q, %v; want EOF or EIO", got, err)
	}
	if _, err := c.f.Write([]byte("AT\r")); err == nil {
		t.Error("write after Vanish succeeded")
	}
	m.Vanish() // again: no effect

	if err := m.Reappear(); err != nil {
		t.Fatalf("Reappear: %v", err)
	}
	second, err := os.Readlink(link)
	if err != nil || second == first || !strings.HasPrefix(second, "/dev/pts/") {
		t.Fatalf("link after Reappear: %q, %v; want a new device", second, err)
	}
	c2 := openClient(t, link)
	c2.expect("AT", "AT\r"+okReply) // echo is on again
	c2.expect("ATE0", "ATE0\r"+okReply)
	c2.expect("AT+CPIN?", infoReply("+CPIN: SIM PIN"))
	c2.expect(`AT+CPIN="1234"`, okReply)
	if got := c2.sendPDU([]byte{0}, encodePDUs(t, testNumber, "after")[0]); got != infoReply("+CMGS: 2") {
		t.Fatalf("got %q", got)
	}
	if inbox := m.Inbox(); len(inbox) != 2 || inbox[0].Text != "before" || inbox[1].Text != "after" {
		t.Errorf("Inbox() = %+v", inbox)
	}

	// Reappear while present power-cycles the modem.
	if err := m.Reappear(); err != nil {
		t.Fatalf("Reappear: %v", err)
	}
	if got, err := c2.read(func(string) int { return -1 }, replyTimeout); got != "" ||
		errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read after power cycle: %q, %v; want EOF or EIO", got, err)
	}
	third, _ := os.Readlink(link)
	if third == second {
		t.Errorf("link not re-pointed after power cycle: %q", third)
	}
	openClient(t, link).expect("AT", "AT\r"+okReply)

	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Lstat(link); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("link after Close: %v, want not exist", err)
	}
	if err := m.Reappear(); !errors.Is(err, ErrModemClosed) {
		t.Errorf("Reappear after Close: %v, want ErrModemClosed", err)
	}
}

func TestModemVanishWithoutLink(t *testing.T) {
	m := newTestModem(t, ModemOptions{})
	first := m.Path()
	m.Vanish()
	if p := m.Path(); p != "" {
		t.Errorf("Path() after Vanish = %q, want empty", p)
	}
	if err := m.Reappear(); err != nil {
		t.Fatal(err)
	}
	if p := m.Path(); p == first || p == "" {
		t.Errorf("Path() after Reappear = %q, want a new device (was %q)", p, first)
	}
	quietClient(t, m).expect("AT", okReply)
}

func TestModemLinkRefusesFile(t *testing.T) {
	link := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(link, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if m, err := NewModem(ModemOptions{Link: link}); err == nil {
		m.Close()
		t.Fatal("NewModem replaced a regular file with its link")
	}
	if b, err := os.ReadFile(link); err != nil || string(b) != "x" {
		t.Errorf("file changed: %q, %v", b, err)
	}
}

func TestModemOptions(t *testing.T) {
	for _, rssi := range []int{-1, 32, 98, 100} {
		if m, err := NewModem(ModemOptions{RSSI: rssi}); err == nil {
			m.Close()
			t.Errorf("RSSI %d accepted", rssi)
		}
	}
	m := newTestModem(t, ModemOptions{
		Operator: "Op", RSSI: 99, Manufacturer: "Acme", Model: "M1", Revision: "R2",
		IMEI: "490154203237518", IMSI: "310150123456789",
	})
	c := quietClient(t, m)
	c.expect("AT+CSQ", infoReply("+CSQ: 99,99"))
	c.expect("AT+COPS?", infoReply(`+COPS: 0,0,"Op",7`))
	c.expect("ATI", infoReply("Acme", "M1", "Revision: R2"))
	c.expect("AT+CGSN;+CIMI", "\r\n490154203237518\r\n\r\n310150123456789\r\n"+okReply)
	m.SetRSSI(0)
	c.expect("AT+CSQ", infoReply("+CSQ: 0,99"))
	m.SetRSSI(40)
	c.expect("AT+CSQ", infoReply("+CSQ: 0,99"))
}

// TestModemReconnect checks that the modem keeps serving clients that open
// and close the device one after the other, and that a client does not
// read answers meant for the one before it.
func TestModemReconnect(t *testing.T) {
	m := newTestModem(t, ModemOptions{})
	for i := range 5 {
		c := openClient(t, m.Path())
		c.expect("AT", "AT\r"+okReply)
		// Leave an answer unread.
		c.write("AT+CSQ\r")
		pfd := []unix.PollFd{{Fd: int32(c.fdNum()), Events: unix.POLLIN}}
		if n, err := unix.Poll(pfd, int(replyTimeout/time.Millisecond)); n != 1 || err != nil {
			t.Fatalf("client %d: waiting for the answer: %d, %v", i, n, err)
		}
		c.f.Close()
		waitFlushed(t, m)
	}
	c := openClient(t, m.Path())
	c.expect("AT", "AT\r"+okReply)
}

// fdNum returns the client's descriptor without changing its mode.
func (c *serialClient) fdNum() int {
	var fd int
	rc, err := c.f.SyscallConn()
	if err != nil {
		c.t.Fatal(err)
	}
	rc.Control(func(u uintptr) { fd = int(u) })
	return fd
}

// waitFlushed waits until the modem has discarded what the last client
// left unread.
func waitFlushed(t testing.TB, m *Modem) {
	t.Helper()
	deadline := time.Now().Add(replyTimeout)
	for {
		m.mu.Lock()
		p := m.port
		m.mu.Unlock()
		p.mu.Lock()
		dirty := p.dirty
		p.mu.Unlock()
		if !dirty {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("unread answers not discarded")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestModemNoClient(t *testing.T) {
	// The modem serves a client that connects after it was idle, and one
	// that connects after another client came and went without a word.
	m := newTestModem(t, ModemOptions{})
	openClient(t, m.Path()).f.Close()
	quietClient(t, m).expect("AT+CSQ", infoReply("+CSQ: 20,99"))
}

func TestModemWaitSMS(t *testing.T) {
	m := newTestModem(t, ModemOptions{})
	c := quietClient(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), replyTimeout)
	defer cancel()

	var wg sync.WaitGroup
	results := make([]SMS, 2)
	for i, to := range []string{"+447700900001", "+447700900002"} {
		wg.Go(func() {
			s, err := m.WaitSMS(ctx, to)
			if err != nil {
				t.Errorf("WaitSMS(%s): %v", to, err)
			}
			results[i] = s
		})
	}
	for _, to := range []string{"+447700900003", "+447700900002", "+447700900001"} {
		if got := c.sendPDU([]byte{0}, encodePDUs(t, to, "to "+to)[0]); !strings.Contains(got, "+CMGS") {
			t.Fatalf("got %q", got)
		}
	}
	wg.Wait()
	if results[0].Text != "to +447700900001" || results[1].Text != "to +447700900002" {
		t.Errorf("WaitSMS got %+v", results)
	}
	// A message is returned once.
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	if _, err := m.WaitSMS(short, "+447700900001"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second WaitSMS: %v, want deadline exceeded", err)
	}
	if s, err := m.WaitSMS(ctx, "+447700900003"); err != nil || s.Text != "to +447700900003" {
		t.Errorf("WaitSMS for the earlier message: %+v, %v", s, err)
	}
	go m.Close()
	if _, err := m.WaitSMS(ctx, "+447700900001"); !errors.Is(err, ErrModemClosed) {
		t.Errorf("WaitSMS on a closed modem: %v, want ErrModemClosed", err)
	}
}

func TestModemServe(t *testing.T) {
	m, err := NewModem(ModemOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx) }()
	quietClient(t, m).expect("AT", okReply)
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if _, err := m.WaitSMS(context.Background(), testNumber); !errors.Is(err, ErrModemClosed) {
		t.Errorf("after Serve returned: %v, want ErrModemClosed", err)
	}
}

// TestModemConcurrent changes faults from several goroutines while a client
// talks to the modem; run with -race.
func TestModemConcurrent(t *testing.T) {
	m := newTestModem(t, ModemOptions{})
	c := quietClient(t, m)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				switch (i + j) % 6 {
				case 0:
					m.SetRSSI(j % 32)
				case 1:
					m.SetRegistered(1 + 4*(j%2))
				case 2:
					m.FailSends(j%2, 38)
				case 3:
					m.Inbox()
					m.Sends()
					m.Path()
				case 4:
					m.SetReplyDelay(time.Duration(j%2) * time.Millisecond)
				case 5:
					m.InjectURC("RING")
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	pdu := encodePDUs(t, testNumber, "code")[0]
	for range 20 {
		got, _ := stripNoise(c.cmd("AT+CSQ"))
		if !strings.HasPrefix(got, "\r\n+CSQ: ") || !strings.HasSuffix(got, okReply) {
			t.Errorf("got %q", got)
		}
		got, _ = stripNoise(c.sendPDU([]byte{0}, pdu))
		if !strings.Contains(got, "+CMGS: ") && got != cmsReply(38) {
			t.Errorf("send: got %q", got)
		}
	}
	close(stop)
	wg.Wait()
}

func TestSMSLogValue(t *testing.T) {
	var b strings.Builder
	log := slog.New(slog.NewTextHandler(&b, nil))
	log.Info("x", "sms", SMS{To: testNumber, Text: "code 123456", Parts: 1, Encoding: "gsm7", Mode: "pdu", Ref: 7})
	out := b.String()
	for _, secret := range []string{"123456", "7700900"} {
		if strings.Contains(out, secret) {
			t.Errorf("log %q contains %q", out, secret)
		}
	}
	if !strings.Contains(out, "sms.to=***********23") || !strings.Contains(out, "sms.chars=11") {
		t.Errorf("log %q lacks the redacted number or the length", out)
	}
}

// BenchmarkModemCommand measures one AT command and its answer through the
// pseudo-terminal.
//
//	go test ./sim -run '^$' -bench 'BenchmarkModem' -benchtime 2s
func BenchmarkModemCommand(b *testing.B) {
	m := newTestModem(b, ModemOptions{Log: slog.New(slog.DiscardHandler)})
	c := quietClient(b, m)
	for b.Loop() {
		c.cmd("AT+CSQ")
	}
}

// BenchmarkModemSendPDU measures sending one PDU mode message through the
// pseudo-terminal: +CMGS, prompt, PDU, +CMGS: <mr>.
func BenchmarkModemSendPDU(b *testing.B) {
	m := newTestModem(b, ModemOptions{Log: slog.New(slog.DiscardHandler)})
	c := quietClient(b, m)
	pdu := encodePDUs(b, testNumber, "Your mfad code is 123456")[0]
	for b.Loop() {
		if got := c.sendPDU([]byte{0}, pdu); !strings.Contains(got, "+CMGS: ") {
			b.Fatalf("got %q", got)
		}
	}
}

// BenchmarkModemFeed measures the AT interpreter alone: a concatenated
// message of three parts in PDU mode, without the pseudo-terminal.
func BenchmarkModemFeed(b *testing.B) {
	var in strings.Builder
	for _, p := range encodePDUs(b, testNumber, strings.Repeat("0123456789", 40)) {
		fmt.Fprintf(&in, "AT+CMGS=%d\r00%X\x1a", len(p), p)
	}
	input := []byte(in.String())
	var inbox []SMS
	d := fuzzDevice(b, ModemOptions{}, &inbox)
	b.SetBytes(int64(len(input)))
	for b.Loop() {
		d.feed(input)
		inbox = inbox[:0]
	}
}
