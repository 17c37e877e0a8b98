package modem

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/warthog618/sms"
	"github.com/warthog618/sms/encoding/tpdu"
)

// unpack7 is an independent reference for GSM 7-bit packing (3GPP TS
// 23.038 §6.1.2.1.1): septet i occupies bits 7i.. of the octet stream,
// least significant bit first, after skip fill bits.
func unpack7(b []byte, skip, n int) []byte {
	out := make([]byte, n)
	for i := range n {
		var v byte
		for j := range 7 {
			bit := skip + 7*i + j
			if b[bit/8]>>(bit%8)&1 == 1 {
				v |= 1 << j
			}
		}
		out[i] = v
	}
	return out
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// zeroSeed makes the concatenation reference start at 0 (first 1).
type zeroSeed struct{}

func (zeroSeed) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestSevenBitPackingVector(t *testing.T) {
	// The classic example: "hellohello" packs to E8329BFD4697D9EC37.
	e := newEncoder(zeroSeed{}, 6)
	pdus, err := e.pdus("+46708251358", "hellohello", false)
	if err != nil {
		t.Fatal(err)
	}
	// SMS-SUBMIT, MR 1, DA international 46708251358, PID 0, DCS 0 (7-bit),
	// no validity period, UDL 10 septets.
	want := mustHex(t, "01 01 0B 91 6407281553F8 00 00 0A E8329BFD4697D9EC37")
	if len(pdus) != 1 || !bytes.Equal(pdus[0], want) {
		t.Fatalf("pdu = %X, want %X", pdus, want)
	}
	if got := unpack7(want[len(want)-9:], 0, 10); string(got) != "hellohello" {
		t.Errorf("reference unpacking = %q", got)
	}
	// With a status report request the first octet gains TP-SRR (0x20).
	pdus, err = e.pdus("+46708251358", "hellohello", true)
	if err != nil {
		t.Fatal(err)
	}
	if pdus[0][0] != 0x21 || pdus[0][1] != 2 {
		t.Errorf("first octet %#x, MR %d; want 0x21 and 2", pdus[0][0], pdus[0][1])
	}
}

func TestExtensionTableCharacters(t *testing.T) {
	// 3GPP TS 23.038 §6.2.1.1: the extension table is reached by the
	// escape 0x1B; each such character costs two septets.
	tests := []struct {
		text    string
		septets []byte
	}{
		{"€", []byte{0x1b, 0x65}},
		{"[", []byte{0x1b, 0x3c}},
		{"]", []byte{0x1b, 0x3e}},
		{"{", []byte{0x1b, 0x28}},
		{"}", []byte{0x1b, 0x29}},
		{"\\", []byte{0x1b, 0x2f}},
		{"^", []byte{0x1b, 0x14}},
		{"~", []byte{0x1b, 0x3d}},
		{"|", []byte{0x1b, 0x40}},
		{"€[]{}", []byte{0x1b, 0x65, 0x1b, 0x3c, 0x1b, 0x3e, 0x1b, 0x28, 0x1b, 0x29}},
		{"@£$¥", []byte{0x00, 0x01, 0x02, 0x03}},
	}
	e := newEncoder(zeroSeed{}, 6)
	for _, tc := range tests {
		pdus, err := e.pdus("+4915112345678", tc.text, false)
		if err != nil {
			t.Fatal(err)
		}
		p := pdus[0]
		// 01 MR 0D 91 <7 octets> PID DCS UDL UD
		dcs, udl, ud := p[12], int(p[13]), p[14:]
		if dcs != 0 || udl != len(tc.septets) {
			t.Errorf("%q: dcs %#x udl %d, want 0 and %d", tc.text, dcs, udl, len(tc.septets))
			continue
		}
		if got := unpack7(ud, 0, udl); !bytes.Equal(got, tc.septets) {
			t.Errorf("%q: septets % X, want % X", tc.text, got, tc.septets)
		}
	}
}

func TestUCS2(t *testing.T) {
	e := newEncoder(zeroSeed{}, 6)
	pdus, err := e.pdus("+4915112345678", "Привет 🔑", false)
	if err != nil {
		t.Fatal(err)
	}
	p := pdus[0]
	dcs, udl, ud := p[12], int(p[13]), p[14:]
	// UTF-16 big endian; the key is a surrogate pair.
	want := mustHex(t, "041F 0440 0438 0432 0435 0442 0020 D83D DD11")
	if dcs != 0x08 || udl != len(want) || !bytes.Equal(ud, want) {
		t.Errorf("dcs %#x udl %d ud % X; want 0x08, %d, % X", dcs, udl, ud, len(want), want)
	}
}

func TestConcatenatedParts(t *testing.T) {
	e := newEncoder(zeroSeed{}, 6)
	text := strings.Repeat("a", 153) + "bbbbbbbb"
	pdus, err := e.pdus("+4915112345678", text, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(pdus) != 2 {
		t.Fatalf("%d parts, want 2", len(pdus))
	}
	for i, p := range pdus {
		// First octet with TP-UDHI (0x40); UDH: length 5, IEI 0 (8-bit
		// reference), length 3, reference 1, 2 parts, part i+1.
		if p[0] != 0x41 {
			t.Errorf("part %d: first octet %#x, want 0x41", i+1, p[0])
		}
		udl, ud := int(p[13]), p[14:]
		if want := []byte{5, 0, 3, 1, 2, byte(i + 1)}; !bytes.Equal(ud[:6], want) {
			t.Errorf("part %d: udh % X, want % X", i+1, ud[:6], want)
		}
		// 6 header octets are 48 bits: 7 septets with 1 fill bit.
		n := udl - 7
		got := string(unpack7(ud[6:], 1, n))
		want := text[:153]
		if i == 1 {
			want = text[153:]
		}
		if got != want {
			t.Errorf("part %d: text %q, want %q", i+1, got, want)
		}
	}
	// The next long message gets the next reference.
	pdus, _ = e.pdus("+4915112345678", text, false)
	if pdus[0][14+3] != 2 {
		t.Errorf("second message reference %d, want 2", pdus[0][17])
	}
}

func TestEncoderLimits(t *testing.T) {
	e := newEncoder(nil, 2)
	if _, err := e.pdus("+4915112345678", strings.Repeat("x", 3*153), false); !errors.Is(err, ErrMessageTooLong) {
		t.Errorf("3 parts with max 2: %v", err)
	}
	if _, err := e.pdus("+4915112345678", "", false); !errors.Is(err, ErrInvalidMessage) {
		t.Errorf("empty: %v", err)
	}
	for _, bad := range []string{"\xff", "\x1b", "a\x00b", "\x1a", "\u0085", "\x7f"} {
		if _, err := e.pdus("+4915112345678", bad, false); !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("%q: %v, want ErrInvalidMessage", bad, err)
		}
	}
	if _, err := e.pdus("+4915112345678", "line\r\nbreak\n", false); err != nil {
		t.Errorf("line breaks: %v", err)
	}
}

func TestTextModeCharacters(t *testing.T) {
	for _, ok := range []string{"Code: 123456", `Yes! "quoted" (x+y)*z/2 = 5; 50% & #1 <a> 'b'?`} {
		if err := checkTextMode(ok); err != nil {
			t.Errorf("checkTextMode(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"a@b", "$5", "a_b", "`", "[", "\\", "]", "^", "{", "|", "}", "~", "é", "a\nb", "a\rb", strings.Repeat("x", 161)} {
		if err := checkTextMode(bad); !errors.Is(err, ErrNotEncodable) {
			t.Errorf("checkTextMode(%q) = %v, want ErrNotEncodable", bad, err)
		}
	}
}

// FuzzPDURoundTrip encodes arbitrary text and decodes the parts with the
// library's decoder: the text must survive, and parts must fit.
func FuzzPDURoundTrip(f *testing.F) {
	for _, s := range []string{"hellohello", "€[]{}", "Привет 🔑", strings.Repeat("x", 161), strings.Repeat("€", 80), "a\u0301", "two\r\nlines"} {
		f.Add(s)
	}
	e := newEncoder(nil, 255)
	f.Fuzz(func(t *testing.T, text string) {
		pdus, err := e.pdus("+4915112345678", text, true)
		if err != nil {
			if errors.Is(err, ErrInvalidMessage) || errors.Is(err, ErrMessageTooLong) {
				return
			}
			t.Fatalf("encoding %q: %v", text, err)
		}
		var tps []*tpdu.TPDU
		for _, p := range pdus {
			if len(p) > 164 {
				t.Fatalf("part of %d octets", len(p))
			}
			tp := &tpdu.TPDU{Direction: tpdu.MO}
			if err := tp.UnmarshalBinary(p); err != nil {
				t.Fatalf("decoding own pdu %X: %v", p, err)
			}
			if !tp.FirstOctet.SRR() || tp.DA.Number() != "+4915112345678" {
				t.Fatalf("pdu %X lost its srr or recipient", p)
			}
			tps = append(tps, tp)
		}
		got, err := sms.Decode(tps)
		if err != nil {
			t.Fatalf("decoding %q: %v", text, err)
		}
		if string(got) != text {
			// UCS-2 carries UTF-16; anything else must round-trip exactly.
			if string(utf16.Decode(utf16.Encode([]rune(text)))) != string(got) {
				t.Fatalf("round trip %q -> %q", text, got)
			}
		}
	})
}
