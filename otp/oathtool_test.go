package otp_test

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mfad/mfad/internal/testenv"
	"github.com/mfad/mfad/otp"
)

// TestOathtool compares Code with the independent oathtool implementation
// (OATH Toolkit). Each run asks oathtool for a window of consecutive codes.
func TestOathtool(t *testing.T) {
	oathtool := testenv.RequireTool(t, "oathtool", "apt-get install oathtool")

	random, err := otp.NewSecret(&counting{next: 0x5a})
	if err != nil {
		t.Fatal(err)
	}
	short := otp.Secret("0123456789abcdef") // 16 bytes: unpadded base32
	times := []int64{0, 59, 1111111109, 1234567890, 1700000015, 2000000000, 20000000000}
	const window = 3

	tests := []struct {
		name string
		s    otp.Secret
		p    otp.Params
	}{
		{"sha1 6 digits", rfcKey(otp.SHA1), otp.Params{Digits: 6, Period: 30 * time.Second, Algorithm: otp.SHA1}},
		{"sha1 8 digits", rfcKey(otp.SHA1), otp.Params{Digits: 8, Period: 30 * time.Second, Algorithm: otp.SHA1}},
		{"sha256 8 digits", rfcKey(otp.SHA256), otp.Params{Digits: 8, Period: 30 * time.Second, Algorithm: otp.SHA256}},
		{"sha512 8 digits", rfcKey(otp.SHA512), otp.Params{Digits: 8, Period: 30 * time.Second, Algorithm: otp.SHA512}},
		{"random sha1 60s", random, otp.Params{Digits: 6, Period: time.Minute, Algorithm: otp.SHA1}},
		{"random sha256 7 digits", random, otp.Params{Digits: 7, Period: 30 * time.Second, Algorithm: otp.SHA256}},
		{"random sha512 6 digits 45s", random, otp.Params{Digits: 6, Period: 45 * time.Second, Algorithm: otp.SHA512}},
		{"16-byte sha1", short, otp.Params{Digits: 6, Period: 30 * time.Second, Algorithm: otp.SHA1}},
		{"16-byte sha256 8 digits", short, otp.Params{Digits: 8, Period: 30 * time.Second, Algorithm: otp.SHA256}},
	}
	for _, tc := range tests {
		for _, unix := range times {
			t.Run(fmt.Sprintf("%s/@%d", tc.name, unix), func(t *testing.T) {
				// The seed goes through stdin, not the command line.
				cmd := exec.Command(oathtool,
					"--totp="+string(tc.p.Algorithm),
					"--base32",
					fmt.Sprintf("--digits=%d", tc.p.Digits),
					fmt.Sprintf("--time-step-size=%ds", tc.p.Period/time.Second),
					fmt.Sprintf("--now=@%d", unix),
					fmt.Sprintf("--window=%d", window),
					"-")
				cmd.Stdin = strings.NewReader(tc.s.Base32() + "\n")
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("oathtool: %v: %s", err, stderr.String())
				}
				got := strings.Fields(string(out))
				if len(got) != window+1 {
					t.Fatalf("oathtool printed %d codes, want %d: %q", len(got), window+1, out)
				}
				counter := otp.Counter(time.Unix(unix, 0), tc.p)
				for i, want := range got {
					if code := otp.Code(tc.s, counter+uint64(i), tc.p); code != want {
						t.Errorf("step %d: Code = %s, oathtool %s", counter+uint64(i), code, want)
					}
				}
			})
		}
	}
}
