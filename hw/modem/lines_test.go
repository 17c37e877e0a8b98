package modem

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestAnswerLines(t *testing.T) {
	tests := []struct {
		cmd  string
		info []string
		want []string
	}{
		{"+CSQ", []string{"RING", "+CSQ: 20,99", "+CREG: 1"}, []string{"+CSQ: 20,99"}},
		{"+CGMI", []string{"^RSSI: 12", "", "QUALCOMM INCORPORATED", "+CMTI: \"SM\",1"}, []string{"QUALCOMM INCORPORATED"}},
		{"+CGMI", []string{"+CGMI: Telit"}, []string{"+CGMI: Telit"}},
		{"+CGMM", []string{"AT+CGMM", "E3372", "NO CARRIER"}, []string{"E3372"}},
		{"+CREG?", []string{"+CREG: 1", "+CREG: 0,1"}, []string{"+CREG: 1", "+CREG: 0,1"}},
		{"Z", []string{"RDY", "+CFUN: 1", "SMS Ready"}, nil},
		{"+COPS?", []string{"+QIND: \"csq\",20", `+COPS: 0,0,"Op",7`}, []string{`+COPS: 0,0,"Op",7`}},
	}
	for _, tc := range tests {
		if got := answerLines(tc.cmd, tc.info); !slices.Equal(got, tc.want) {
			t.Errorf("answerLines(%q, %q) = %q, want %q", tc.cmd, tc.info, got, tc.want)
		}
	}
}

func TestParseRegQuery(t *testing.T) {
	tests := []struct {
		lines []string
		want  int
		ok    bool
	}{
		{[]string{"+CREG: 0,1"}, regHome, true},
		{[]string{"+CREG: 2,5,\"00C3\",\"0010\",7"}, regRoaming, true},
		{[]string{"+CREG: 1", "+CREG: 0,2"}, regSearching, true},            // URC first
		{[]string{`+CREG: 1,"00C3","0010"`, "+CREG: 2,3"}, regDenied, true}, // n=2 URC first
		{[]string{`+CREG: 5,"00C3","0010",7`}, 0, false},                    // only a URC
		{[]string{"+CREG: 1"}, 0, false},                                    // only a URC
		{[]string{"+CREG: 0,6"}, regHome, true},                             // SMS only, home
		{[]string{"+CREG: 0,10"}, regRoaming, true},                         // SMS only, roaming
		{[]string{"+CREG: x,1", "+CREG: 0,12", "+CREG: 9,1", "+CREG:"}, 0, false},
	}
	for _, tc := range tests {
		got, err := parseRegQuery(tc.lines, "+CREG")
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseRegQuery(%q) = %d, %v; want %d ok=%v", tc.lines, got, err, tc.want, tc.ok)
		}
	}
}

func TestParsers(t *testing.T) {
	for _, tc := range []struct {
		line string
		dbm  int
		ok   bool
	}{
		{"+CSQ: 0,99", -113, true}, {"+CSQ: 31,0", -51, true}, {"+CSQ: 99,99", 0, true},
		{"+CSQ: 15", -83, true}, {"+CSQ: 32,0", 0, false}, {"+CSQ: -1,0", 0, false}, {"+CSQ: ,", 0, false},
	} {
		got, err := parseCSQ([]string{tc.line})
		if got != tc.dbm || (err == nil) != tc.ok {
			t.Errorf("parseCSQ(%q) = %d, %v", tc.line, got, err)
		}
	}
	if got := parseCOPS([]string{`+COPS: 0,0,"Vodafone.de, LTE",7`}); got != "Vodafone.de, LTE" {
		t.Errorf("parseCOPS = %q", got)
	}
	if got := parseCOPS([]string{"+COPS: 0"}); got != "" {
		t.Errorf("parseCOPS without operator = %q", got)
	}
	for in, want := range map[string]int{"12": 12, "255": 255, `7,"26/01/02,03:04:05+04"`: 7, "256": -1, "x": -1, "": -1} {
		if got, _ := parseMR(in); got != want {
			t.Errorf("parseMR(%q) = %d, want %d", in, got, want)
		}
	}
	if s, err := parseCPIN([]string{"+CPIN: SIM PIN"}); s != "SIM PIN" || err != nil {
		t.Errorf("parseCPIN = %q, %v", s, err)
	}
	f, q := fields(`1,"a,b",,"",x`)
	if !slices.Equal(f, []string{"1", "a,b", "", "", "x"}) || !slices.Equal(q, []bool{false, true, false, true, false}) {
		t.Errorf("fields = %q %v", f, q)
	}
}

// A status report for MR 42 to +15555550123, received and delivered on
// 2026-01-02 03:04:05 UTC: SMSC omitted ("00"), SMS-STATUS-REPORT (06),
// MR 2A, RA 0B 91 5155550521F3, SCTS and DT 62102030405000, ST.
const cdsPDU = "00" + "06" + "2A" + "0B91" + "5155550521F3" + "62102030405000" + "62102030405000"

func TestDecodeCDS(t *testing.T) {
	r, err := decodeCDSPDU("+CDS: 25", cdsPDU+"00")
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if r.Ref != 42 || r.Status != 0 || !r.Delivered || !r.Final || !r.Discharged.Equal(want) {
		t.Errorf("decodeCDSPDU = %+v", r)
	}
	for st, tc := range map[string]struct{ delivered, final bool }{
		"00": {true, true}, "01": {true, true}, "20": {false, false}, "30": {false, false},
		"41": {false, true}, "46": {false, true}, "63": {false, true},
	} {
		r, err := decodeCDSPDU("+CDS: 25", cdsPDU+st)
		if err != nil || r.Delivered != tc.delivered || r.Final != tc.final {
			t.Errorf("status %s: %+v, %v", st, r, err)
		}
	}
	// gsm.UnmarshalTPDU checks the length; an SMS-DELIVER is refused.
	for _, bad := range [][2]string{
		{"+CDS: 24", cdsPDU + "00"},
		{"+CDS: x", cdsPDU + "00"},
		{"+CDS: 25", cdsPDU[:20]},
		{"+CDS: 25", "zz"},
		{"+CDS: 14", "00" + "04" + "0B91" + "5155550521F3" + "0000" + "62102030405000" + "00"},
	} {
		if r, err := decodeCDSPDU(bad[0], bad[1]); err == nil {
			t.Errorf("decodeCDSPDU(%q, %q) = %+v, want an error", bad[0], bad[1], r)
		}
	}

	r, err = decodeCDSText(`+CDS: 6,42,"+15555550123",145,"26/01/02,03:04:05+00","26/01/02,03:04:09+00",0`)
	if err != nil || r.Ref != 42 || !r.Delivered || !r.Discharged.Equal(want.Add(4*time.Second)) {
		t.Errorf("decodeCDSText = %+v, %v", r, err)
	}
	for _, bad := range []string{"+CDS: 6,42", `+CDS: 6,x,"",145,"","",0`, `+CDS: 6,42,"",145,"","",999`} {
		if _, err := decodeCDSText(bad); err == nil {
			t.Errorf("decodeCDSText(%q) accepted", bad)
		}
	}
}

func TestLineScanner(t *testing.T) {
	stream := "\r\nOK\r\n\r\n+CDS: 25\r\n" + cdsPDU + "00\r\n\r\n> " + "\r\nRING\r\n" +
		`+CDS: 6,42,"+1555",145,"26/01/02,03:04:05+00","26/01/02,03:04:09+00",0` + "\r\n+CMGS: 5\r\n" +
		"+CDS: 25\r\nOK\r\n" + strings.Repeat("x", 2000) + "\r\n"
	// Split the stream at every position: lines must not depend on reads.
	for split := 0; split <= len(stream); split += 7 {
		var lines []string
		var urcs []string
		s := &lineScanner{emit: func(line string, u *urc) {
			lines = append(lines, line)
			if u != nil {
				urcs = append(urcs, u.kind+"|"+strings.Join(u.lines, "|"))
			}
		}}
		s.write([]byte(stream[:split]))
		s.write([]byte(stream[split:]))
		wantURCs := []string{
			"+CDS|+CDS: 25|" + cdsPDU + "00",
			"prompt|> ",
			"other|RING",
			`+CDS-text|+CDS: 6,42,"+1555",145,"26/01/02,03:04:05+00","26/01/02,03:04:09+00",0`,
			"+CMGS|+CMGS: 5",
		}
		if !slices.Equal(urcs, wantURCs) {
			t.Fatalf("split %d: urcs %q", split, urcs)
		}
		if len(lines) != 10 || lines[3] != "> " || len(lines[9]) != maxLine+3 {
			t.Fatalf("split %d: lines %q", split, lines)
		}
	}
}

func TestRedactLine(t *testing.T) {
	for in, want := range map[string]string{
		`AT+CPIN="1234"`:             "AT+CPIN=<redacted>",
		`at+cpin=1234,5678`:          "at+cpin=<redacted>",
		`AT+CMGS="+15555550123",145`: "AT+CMGS=<redacted>",
		"AT+CMGS=23":                 "AT+CMGS=23",
		`+CDS: 6,42,"+15555550123",145,"26/01/02,03:04:05+00"`: `+CDS: 6,42,"<number>",145,"26/01/02,03:04:05+00"`,
		cdsPDU + "00":             "<hex, 26 bytes>",
		"0011000B91\x1a":          "<message body, 11 bytes>",
		"+CSQ: 20,99":             "+CSQ: 20,99",
		`+CLIP: "0301234567",129`: `+CLIP: "<number>",129`,
	} {
		if got := redactLine(in); got != want {
			t.Errorf("redactLine(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzURCHandling feeds arbitrary bytes to the line scanner, splits the
// resulting lines into command answers and decodes whatever it takes for
// status reports. Nothing may panic; answers keep only input lines, and
// a URC never counts as a registration answer.
func FuzzURCHandling(f *testing.F) {
	f.Add([]byte("\r\n+CREG: 1\r\n+CREG: 0,5\r\nOK\r\n"), "+CREG?")
	f.Add([]byte("\r\n+CDS: 25\r\n"+cdsPDU+"00\r\n"), "+CSQ")
	f.Add([]byte("RING\r\n+CSQ: 20,99\r\n^RSSI:3\r\n> \r\n"), "+CSQ")
	f.Add([]byte(`+COPS: 0,0,"a,b",7`+"\r\n"), "+COPS?")
	f.Add([]byte(`+CDS: 6,1,"+1",145,"26/01/02,03:04:05+00","x",0`+"\n"), "+CGMI")
	f.Add([]byte("+CMGS: 255,\"x\"\r\nOK\r\n"), "+CMGS=23")
	f.Fuzz(func(t *testing.T, stream []byte, cmd string) {
		var lines []string
		s := &lineScanner{emit: func(line string, u *urc) {
			if len(line) > maxLine+3 {
				t.Fatalf("line of %d bytes", len(line))
			}
			lines = append(lines, line)
			if u == nil {
				return
			}
			switch u.kind {
			case "+CDS":
				if r, err := decodeCDSPDU(u.lines[0], u.lines[1]); err == nil && (r.Ref < 0 || r.Ref > 255 || r.Delivered && !r.Final) {
					t.Fatalf("report %+v", r)
				}
			case "+CDS-text":
				if r, err := decodeCDSText(u.lines[0]); err == nil && (r.Ref < 0 || r.Ref > 255 || r.Delivered && !r.Final) {
					t.Fatalf("report %+v", r)
				}
			}
		}}
		s.write(stream)
		got := answerLines(cmd, lines)
		for _, l := range got {
			if !slices.ContainsFunc(lines, func(in string) bool { return strings.TrimSpace(in) == l }) {
				t.Fatalf("answer line %q not in input", l)
			}
		}
		for _, prefix := range []string{"+CREG", "+CEREG"} {
			if stat, err := parseRegQuery(got, prefix); err == nil {
				found := false
				for _, l := range got {
					f, q := fields(value(l, prefix))
					found = found || strings.HasPrefix(l, prefix+":") && len(f) >= 2 && !q[0] && !q[1]
				}
				if !found || stat < 0 || stat > 5 {
					t.Fatalf("registration %d from %q", stat, got)
				}
			}
		}
		if dbm, err := parseCSQ(got); err == nil && (dbm > 0 || dbm < -116) {
			t.Fatalf("signal %d dBm", dbm)
		}
		_ = parseCOPS(got)
		if len(got) > 0 {
			_, _ = parseMR(got[0])
			_, _ = parseCPIN(got)
			_ = redactLine(got[0])
		}
	})
}

// FuzzDecodeCDS decodes arbitrary +CDS headers and PDU lines.
func FuzzDecodeCDS(f *testing.F) {
	f.Add("+CDS: 25", cdsPDU+"00")
	f.Add("+CDS: 25", cdsPDU+"46")
	f.Add("+CDS: 6", "0006")
	f.Add("+CDS: 26", cdsPDU+"0000")
	f.Add("+CDS: 28", cdsPDU+"0007000100")
	f.Add(`+CDS: 6,42,"+15555550123",145,"26/01/02,03:04:05+00","26/01/02,03:04:09+00",0`, "")
	f.Fuzz(func(t *testing.T, header, pdu string) {
		if r, err := decodeCDSPDU(header, pdu); err == nil {
			if r.Ref < 0 || r.Ref > 255 || r.Status < 0 || r.Status > 255 || r.Delivered && !r.Final {
				t.Fatalf("decodeCDSPDU(%q, %q) = %+v", header, pdu, r)
			}
		}
		if r, err := decodeCDSText(header); err == nil {
			if r.Ref < 0 || r.Ref > 255 || r.Status < 0 || r.Status > 255 || r.Delivered && !r.Final {
				t.Fatalf("decodeCDSText(%q) = %+v", header, r)
			}
		}
	})
}
