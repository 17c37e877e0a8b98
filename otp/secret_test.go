package otp_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/mfad/mfad/otp"
)

// counting yields 0, 1, 2, ... so "random" seeds are predictable in tests.
type counting struct{ next byte }

func (c *counting) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = c.next
		c.next++
	}
	return len(p), nil
}

func TestNewSecret(t *testing.T) {
	t.Run("injected reader", func(t *testing.T) {
		s, err := otp.NewSecret(&counting{next: 1})
		if err != nil {
			t.Fatal(err)
		}
		want := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}
		if !bytes.Equal(s, want) {
			t.Errorf("NewSecret = %x, want %x", []byte(s), want)
		}
	})
	t.Run("crypto rand", func(t *testing.T) {
		a, err := otp.NewSecret(nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := otp.NewSecret(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(a) != 20 {
			t.Errorf("len = %d, want 20", len(a))
		}
		if bytes.Equal(a, b) {
			t.Error("two secrets from crypto/rand are equal")
		}
	})
	t.Run("short reader", func(t *testing.T) {
		_, err := otp.NewSecret(bytes.NewReader(make([]byte, 10)))
		if err == nil {
			t.Fatal("NewSecret with a short reader succeeded")
		}
	})
	t.Run("failing reader", func(t *testing.T) {
		boom := errors.New("boom")
		_, err := otp.NewSecret(iotest.ErrReader(boom))
		if !errors.Is(err, boom) {
			t.Fatalf("NewSecret = %v, want wrapped reader error", err)
		}
	})
}

func TestBase32(t *testing.T) {
	tests := []struct {
		name string
		s    otp.Secret
		want string
	}{
		{"rfc sha1 key", otp.Secret("12345678901234567890"), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"},
		{"16 bytes needs padding elsewhere", otp.Secret("1234567890123456"), "GEZDGNBVGY3TQOJQGEZDGNBVGY"},
		{"empty", nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.s.Base32(); got != tc.want {
				t.Errorf("Base32 = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseBase32(t *testing.T) {
	want := otp.Secret("12345678901234567890")
	want16 := otp.Secret("1234567890123456")
	tests := []struct {
		name  string
		input string
		want  otp.Secret
	}{
		{"canonical", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", want},
		{"lower case", "gezdgnbvgy3tqojqgezdgnbvgy3tqojq", want},
		{"grouped by spaces", "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ", want},
		{"unpadded", "GEZDGNBVGY3TQOJQGEZDGNBVGY", want16},
		{"padded", "GEZDGNBVGY3TQOJQGEZDGNBVGY======", want16},
		{"empty", "", nil},
		{"too short", "GEZDGNBVGY3TQOJQ", nil},
		{"invalid letter", "GEZDGNBVGY3TQOJ1GEZDGNBVGY3TQOJQ", nil},
		{"impossible length", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQA", nil},
		{"non-zero trailing bits", "GEZDGNBVGY3TQOJQGEZDGNBVGZ", nil},
		{"padding inside", "GEZDGNBV=Y3TQOJQGEZDGNBVGY3TQOJQ", nil},
		{"dash", "GEZD-GNBV-GY3T-QOJQ-GEZD-GNBV-GY3T-QOJQ", nil},
		{"unicode", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQé", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := otp.ParseBase32(tc.input)
			if tc.want == nil {
				if !errors.Is(err, otp.ErrBadSecret) {
					t.Fatalf("ParseBase32 = %v, want ErrBadSecret", err)
				}
				if tc.input != "" && strings.Contains(err.Error(), tc.input) {
					t.Errorf("error %q echoes the input", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Errorf("ParseBase32 = %x, want %x", []byte(got), []byte(tc.want))
			}
		})
	}
	t.Run("round trip", func(t *testing.T) {
		s, err := otp.NewSecret(nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := otp.ParseBase32(s.Base32())
		if err != nil || !bytes.Equal(got, s) {
			t.Fatalf("ParseBase32(Base32()) = %x, %v", []byte(got), err)
		}
	})
}

// secretForms are the encodings of s that must never appear in output.
func secretForms(s otp.Secret) []string {
	return []string{
		s.Base32(),
		strings.ToLower(s.Base32()),
		hex.EncodeToString(s),
		strings.ToUpper(hex.EncodeToString(s)),
		base64.StdEncoding.EncodeToString(s),
		base64.RawStdEncoding.EncodeToString(s),
		string(s),
		fmt.Sprint([]byte(s)),
	}
}

func assertNoSecret(t *testing.T, what, out string, s otp.Secret) {
	t.Helper()
	for _, form := range secretForms(s) {
		if strings.Contains(out, form) {
			t.Errorf("%s contains the secret (%q): %s", what, form, out)
		}
	}
}

func TestSecretRedaction(t *testing.T) {
	s, err := otp.NewSecret(&counting{next: 'a'})
	if err != nil {
		t.Fatal(err)
	}
	type record struct{ S otp.Secret }

	t.Run("fmt", func(t *testing.T) {
		tests := []struct {
			name string
			out  string
			want string
		}{
			{"spec verbs", fmt.Sprintf("%v %s %+v", s, s, record{s}), "[redacted] [redacted] {S:[redacted]}"},
			{"go syntax", fmt.Sprintf("%#v", s), "[redacted]"},
			{"go syntax struct", fmt.Sprintf("%#v", record{s}), "otp_test.record{S:[redacted]}"},
			{"hex", fmt.Sprintf("%x %X", s, s), "[redacted] [redacted]"},
			{"decimal", fmt.Sprintf("%d", s), "[redacted]"},
			{"quoted", fmt.Sprintf("%q", s), "[redacted]"},
			{"pointer", fmt.Sprintf("%v", &s), "[redacted]"},
			{"slice", fmt.Sprint([]otp.Secret{s}), "[[redacted]]"},
			{"String", s.String(), "[redacted]"},
			{"Println", strings.TrimSpace(fmt.Sprintln(s)), "[redacted]"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if tc.out != tc.want {
					t.Errorf("got %q, want %q", tc.out, tc.want)
				}
				assertNoSecret(t, "output", tc.out, s)
			})
		}
	})

	t.Run("slog", func(t *testing.T) {
		tests := []struct {
			name    string
			handler func(*bytes.Buffer) slog.Handler
		}{
			{"json", func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) }},
			{"text", func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) }},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				var buf bytes.Buffer
				log := slog.New(tc.handler(&buf))
				log.Info("enrolled",
					slog.Any("secret", s),
					slog.Any("record", record{s}),
					slog.Group("g", slog.Any("secret", s)),
					"ptr", &s,
				)
				out := buf.String()
				if !strings.Contains(out, "[redacted]") {
					t.Errorf("output has no redaction marker: %s", out)
				}
				assertNoSecret(t, "log output", out, s)
			})
		}
	})

	t.Run("json", func(t *testing.T) {
		out, err := json.Marshal(record{s})
		if err == nil {
			t.Fatalf("json.Marshal succeeded: %s", out)
		}
		assertNoSecret(t, "json output", string(out), s)
		assertNoSecret(t, "json error", err.Error(), s)
	})
}
