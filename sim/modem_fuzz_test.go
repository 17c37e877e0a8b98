package sim

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/warthog618/sms"
)

// fuzzDevice returns a device as NewModem builds it, without a
// pseudo-terminal, recording what it delivers.
func fuzzDevice(t testing.TB, opts ModemOptions, inbox *[]SMS) *modemDevice {
	t.Helper()
	opts.Now = func() time.Time { return testTime }
	opts, err := opts.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return newDevice(opts, slog.New(slog.DiscardHandler), func(s SMS) { *inbox = append(*inbox, s) })
}

// flattenChunks joins output chunks, ignoring their delays.
func flattenChunks(out []outChunk) string {
	var b strings.Builder
	for _, c := range out {
		b.Write(c.data)
	}
	return b.String()
}

// modemSeeds are command lines and messages a driver sends.
func modemSeeds(t testing.TB) []string {
	pdus := encodePDUs(t, testNumber, strings.Repeat("long message ", 20))
	ucs2 := ucs2Segments(t, testNumber, "Ваш код: 123456 🔑")
	seeds := []string{
		"AT\r",
		"\x1b\r\nATZ\rATE0\r",
		"ATE0V1Q0&C1&D2\rAT+CMEE=2;+GCAP\r",
		"AT+CPIN?\rAT+CPIN=\"1234\"\rAT+CPIN=\"12345678\",\"1111\"\r",
		"AT+CREG=2;+CREG?;+CEREG?;+CGREG=1\r",
		"AT+CSQ;+COPS=3,2;+COPS?;+COPS=?\r",
		"ATI\rAT+CGMI;+CGMM;+CGMR;+CGSN;+CIMI\r",
		"AT+CSCS=\"UCS2\";+CSCA?;+CSCA=\"002B0034\",145\r",
		"AT+CNMI=2,1,0,1,0;+CSMP=49,167,0,8;+CPMS=\"SM\",\"ME\"\r",
		"AT+CMGL=4;+CMGD=1,4;+CMGR=1;+CSMS=1;+CNMA\r",
		"ATS0=1S3?S7=\rA/AT+CFUN=0;+CFUN=1,1\r",
		"ATV0\rATQ1\rAT+FOO\r",
		"AT+CMGF=1\rAT+CMGS=\"+447700900123\"\rline\rtwo\x1a",
		"AT+CMGF=1;+CSMP=17,167,0,8\rAT+CMGS=\"07700\",129\r0041\x1a",
		"AT+CMGF=1;+CSCS=\"UCS2\"\rAT+CMGS=\"002B\"\r00410042\x1b",
		"AT+CMGS=7\r0001000381214300000141\x1a",
		"AT+CMGS=23\r\bzz\x1a",
	}
	for _, group := range [][][]byte{pdus, ucs2} {
		var b strings.Builder
		for _, p := range group {
			fmt.Fprintf(&b, "AT+CMGS=%d\r00%X\x1a", len(p), p)
		}
		seeds = append(seeds, b.String())
	}
	return seeds
}

// FuzzModemInput feeds arbitrary bytes to the modem's input handler. It
// must not panic, its output must not depend on how the input is split,
// and afterwards ESC, ATZ and AT must get OK.
//
//	go test ./sim -run '^$' -fuzz FuzzModemInput -fuzztime 1m
func FuzzModemInput(f *testing.F) {
	for _, s := range modemSeeds(f) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var inboxWhole, inboxSplit []SMS
		opts := ModemOptions{PIN: "1234", DeliveryReports: true}
		whole := fuzzDevice(t, opts, &inboxWhole)
		split := fuzzDevice(t, opts, &inboxSplit)

		outWhole := flattenChunks(whole.feed(in))
		var outSplit strings.Builder
		for i := range in {
			outSplit.WriteString(flattenChunks(split.feed(in[i : i+1])))
		}
		if outWhole != outSplit.String() {
			t.Fatalf("output depends on how input is split:\nwhole %q\nsplit %q", outWhole, outSplit.String())
		}
		if !equalSMS(inboxWhole, inboxSplit) {
			t.Fatalf("messages depend on how input is split:\nwhole %+v\nsplit %+v", inboxWhole, inboxSplit)
		}
		if len(whole.line) > maxCommandLine || len(whole.partials) > maxPartials ||
			whole.prompt != nil && len(whole.prompt.buf) > maxSMSInput {
			t.Fatalf("buffers over their limits: line %d, partials %d", len(whole.line), len(whole.partials))
		}
		for _, s := range inboxWhole {
			if s.Parts < 1 || s.Mode != "pdu" && s.Mode != "text" {
				t.Fatalf("bad message %+v", s)
			}
		}

		whole.feed([]byte("\x1b\rATZ\r"))
		if got := flattenChunks(whole.feed([]byte("AT\r"))); got != "AT\r"+okReply {
			t.Fatalf("after %q: AT answered %q", in, got)
		}
	})
}

// FuzzModemPDU sends arbitrary bytes as the PDU of a +CMGS command. The
// modem must answer +CMGS or +CMS ERROR: 304, and then AT with OK.
//
//	go test ./sim -run '^$' -fuzz FuzzModemPDU -fuzztime 1m
func FuzzModemPDU(f *testing.F) {
	for _, group := range [][][]byte{
		encodePDUs(f, testNumber, "code 123456"),
		encodePDUs(f, testNumber, strings.Repeat("long ", 40)),
		encodePDUs(f, "+12", "Ваш код"),
		encodePDUs(f, testNumber, "8bit", sms.As8Bit),
		ucs2Segments(f, testNumber, strings.Repeat("🔑", 80)),
	} {
		for _, p := range group {
			f.Add(append([]byte{0}, p...), uint8(len(p)))
		}
	}
	f.Fuzz(func(t *testing.T, pdu []byte, declared uint8) {
		var inbox []SMS
		d := fuzzDevice(t, ModemOptions{DeliveryReports: true}, &inbox)
		d.feed([]byte("ATE0;+CNMI=2,1,0,1,0\r"))
		prompt := flattenChunks(d.feed(fmt.Appendf(nil, "AT+CMGS=%d\r", declared)))
		if declared < minTPDULen || declared > maxTPDULen {
			if prompt != cmsReply(304) {
				t.Fatalf("AT+CMGS=%d: got %q", declared, prompt)
			}
			return
		}
		if prompt != "\r\n> " {
			t.Fatalf("AT+CMGS=%d: got %q", declared, prompt)
		}
		got := flattenChunks(d.feed(append([]byte(strings.ToUpper(hex.EncodeToString(pdu))), 0x1a)))
		if got != cmsReply(304) && !strings.HasPrefix(got, infoReply("+CMGS: 1")) {
			t.Fatalf("pdu %X: got %q", pdu, got)
		}
		if got == cmsReply(304) && (d.sends != 0 || len(inbox) != 0) {
			t.Fatalf("pdu %X refused but sent", pdu)
		}
		if bytes.ContainsRune([]byte(got), '\x00') {
			t.Fatalf("pdu %X: NUL in answer %q", pdu, got)
		}
		if got := flattenChunks(d.feed([]byte("AT\r"))); got != okReply {
			t.Fatalf("after pdu %X: AT answered %q", pdu, got)
		}
	})
}
