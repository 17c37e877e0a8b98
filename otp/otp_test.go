package otp_test

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mfad/mfad/otp"
)

// rfcKey returns the RFC 6238 Appendix B key (with RFC Errata 2866) for
// alg; the SHA1 key is also the RFC 4226 key.
func rfcKey(alg otp.Algorithm) otp.Secret {
	switch alg {
	case otp.SHA256:
		return otp.Secret("12345678901234567890123456789012")
	case otp.SHA512:
		return otp.Secret("1234567890123456789012345678901234567890123456789012345678901234")
	}
	return otp.Secret("12345678901234567890")
}

// readVectors returns the whitespace-separated fields of every non-comment
// line of a testdata file.
func readVectors(t *testing.T, name string) [][]string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		rows = append(rows, strings.Fields(line))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		t.Fatalf("%s: no vectors", name)
	}
	return rows
}

func TestRFC6238Vectors(t *testing.T) {
	rows := readVectors(t, "rfc6238.txt")
	if len(rows) != 18 {
		t.Fatalf("got %d vectors, want 18", len(rows))
	}
	for _, row := range rows {
		if len(row) != 4 {
			t.Fatalf("malformed vector line %q", row)
		}
		unix, err := strconv.ParseInt(row[0], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		wantCounter, err := strconv.ParseUint(row[1], 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		wantCode, alg := row[2], otp.Algorithm(row[3])
		t.Run(row[0]+"/"+row[3], func(t *testing.T) {
			p := otp.Params{Digits: 8, Period: 30 * time.Second, Algorithm: alg}
			now := time.Unix(unix, 0)
			counter := otp.Counter(now, p)
			if counter != wantCounter {
				t.Fatalf("Counter = %#x, want %#x", counter, wantCounter)
			}
			if got := otp.Code(rfcKey(alg), counter, p); got != wantCode {
				t.Errorf("Code = %s, want %s", got, wantCode)
			}
			m, err := otp.Verify(rfcKey(alg), wantCode, now, p, 0, 0, 0)
			if err != nil || m != (otp.Match{Counter: wantCounter}) {
				t.Errorf("Verify = %+v, %v; want counter %#x", m, err, wantCounter)
			}
		})
	}
}

func TestRFC4226Vectors(t *testing.T) {
	rows := readVectors(t, "rfc4226.txt")
	if len(rows) != 10 {
		t.Fatalf("got %d vectors, want 10", len(rows))
	}
	key := rfcKey(otp.SHA1)
	p := otp.Params{Digits: 6, Period: 30 * time.Second, Algorithm: otp.SHA1}
	for _, row := range rows {
		if len(row) != 3 {
			t.Fatalf("malformed vector line %q", row)
		}
		t.Run("counter "+row[0], func(t *testing.T) {
			counter, err := strconv.ParseUint(row[0], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			// Check the intermediate HMAC column too, so the file is
			// parsed as intended.
			mac := hmac.New(sha1.New, key)
			mac.Write([]byte{0, 0, 0, 0, 0, 0, 0, byte(counter)})
			if got := hex.EncodeToString(mac.Sum(nil)); got != row[1] {
				t.Fatalf("HMAC = %s, want %s", got, row[1])
			}
			if got := otp.Code(key, counter, p); got != row[2] {
				t.Errorf("Code = %s, want %s", got, row[2])
			}
			// The same step reached through time: counter*30 s is step counter.
			now := time.Unix(int64(counter)*30+29, 0)
			if got := otp.Code(key, otp.Counter(now, p), p); got != row[2] {
				t.Errorf("Code(Counter(%v)) = %s, want %s", now.Unix(), got, row[2])
			}
		})
	}
}

func TestParamsValidate(t *testing.T) {
	valid := otp.DefaultParams()
	tests := []struct {
		name string
		p    otp.Params
		ok   bool
	}{
		{"default", valid, true},
		{"8 digits sha512 60s", otp.Params{Digits: 8, Period: time.Minute, Algorithm: otp.SHA512}, true},
		{"7 digits sha256", otp.Params{Digits: 7, Period: 30 * time.Second, Algorithm: otp.SHA256}, true},
		{"1 second period", otp.Params{Digits: 6, Period: time.Second, Algorithm: otp.SHA1}, true},
		{"zero value", otp.Params{}, false},
		{"5 digits", otp.Params{Digits: 5, Period: 30 * time.Second, Algorithm: otp.SHA1}, false},
		{"9 digits", otp.Params{Digits: 9, Period: 30 * time.Second, Algorithm: otp.SHA1}, false},
		{"zero period", otp.Params{Digits: 6, Algorithm: otp.SHA1}, false},
		{"negative period", otp.Params{Digits: 6, Period: -30 * time.Second, Algorithm: otp.SHA1}, false},
		{"sub-second period", otp.Params{Digits: 6, Period: 500 * time.Millisecond, Algorithm: otp.SHA1}, false},
		{"fractional period", otp.Params{Digits: 6, Period: 1500 * time.Millisecond, Algorithm: otp.SHA1}, false},
		{"md5", otp.Params{Digits: 6, Period: 30 * time.Second, Algorithm: "MD5"}, false},
		{"lower case algorithm", otp.Params{Digits: 6, Period: 30 * time.Second, Algorithm: "sha1"}, false},
		{"empty algorithm", otp.Params{Digits: 6, Period: 30 * time.Second}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Validate()
			if tc.ok && err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			if !tc.ok && !errors.Is(err, otp.ErrBadParams) {
				t.Fatalf("Validate() = %v, want ErrBadParams", err)
			}
		})
	}
}

func TestCounter(t *testing.T) {
	p30 := otp.DefaultParams()
	p60 := otp.Params{Digits: 6, Period: time.Minute, Algorithm: otp.SHA1}
	tests := []struct {
		name string
		t    time.Time
		p    otp.Params
		want uint64
	}{
		{"epoch", time.Unix(0, 0), p30, 0},
		{"end of first step", time.Unix(29, 999999999), p30, 0},
		{"start of second step", time.Unix(30, 0), p30, 1},
		{"60s period", time.Unix(119, 0), p60, 1},
		{"before epoch", time.Unix(-1, 0), p30, 0},
		{"zero time", time.Time{}, p30, 0},
		{"time zone does not matter", time.Unix(59, 0).In(time.FixedZone("x", 5*3600)), p30, 1},
		{"year 2603", time.Unix(20000000000, 0), p30, 0x27BC86AA},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := otp.Counter(tc.t, tc.p); got != tc.want {
				t.Errorf("Counter = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestCodePanicsOnInvalidParams(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Code with invalid params did not panic")
		}
	}()
	otp.Code(rfcKey(otp.SHA1), 1, otp.Params{})
}

func TestCodeIsZeroPadded(t *testing.T) {
	// RFC 6238 gives 07081804 for this step at 8 digits; at 6 digits the
	// code keeps its leading zero.
	p := otp.Params{Digits: 6, Period: 30 * time.Second, Algorithm: otp.SHA1}
	if got := otp.Code(rfcKey(otp.SHA1), 0x23523EC, p); got != "081804" {
		t.Errorf("Code = %q, want %q", got, "081804")
	}
}

func TestNormalizeCode(t *testing.T) {
	p6 := otp.DefaultParams()
	p8 := otp.Params{Digits: 8, Period: 30 * time.Second, Algorithm: otp.SHA1}
	tests := []struct {
		name  string
		input string
		p     otp.Params
		want  string
		ok    bool
	}{
		{"plain", "123456", p6, "123456", true},
		{"leading zeros", "000123", p6, "000123", true},
		{"space in middle", "123 456", p6, "123456", true},
		{"surrounding spaces", "  123456 ", p6, "123456", true},
		{"many spaces", "1 2 3 4 5 6", p6, "123456", true},
		{"dash in middle", "123-456", p6, "123456", true},
		{"dash off centre", "12-3456", p6, "123456", true},
		{"dash with spaces", "123 - 456", p6, "123456", true},
		{"8 digits grouped", "1234 5678", p8, "12345678", true},
		{"8 digits dash", "1234-5678", p8, "12345678", true},
		{"two dashes", "12-34-56", p6, "", false},
		{"leading dash", "-123456", p6, "", false},
		{"trailing dash", "123456-", p6, "", false},
		{"only dash", "-", p6, "", false},
		{"empty", "", p6, "", false},
		{"only spaces", "      ", p6, "", false},
		{"too short", "12345", p6, "", false},
		{"too long", "1234567", p6, "", false},
		{"6 digits for 8-digit params", "123456", p8, "", false},
		{"letter", "12a456", p6, "", false},
		{"tab", "123\t456", p6, "", false},
		{"newline", "123456\n", p6, "", false},
		{"plus sign", "+123456", p6, "", false},
		{"fullwidth digits", "１２３４５６", p6, "", false},
		{"arabic-indic digits", "١٢٣٤٥٦", p6, "", false},
		{"non-breaking space", "123\u00a0456", p6, "", false},
		{"very long input", strings.Repeat(" ", 100) + "123456", p6, "", false},
		{"invalid params", "123456", otp.Params{}, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := otp.NormalizeCode(tc.input, tc.p)
			if got != tc.want || ok != tc.ok {
				t.Errorf("NormalizeCode(%q) = %q, %v; want %q, %v", tc.input, got, ok, tc.want, tc.ok)
			}
		})
	}
}
