package u2f

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// vectorFile is a verbatim copy of the published U2F raw-message vectors.
const vectorFile = "u2f-raw-messages.md"

func readVectors(tb testing.TB) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", vectorFile))
	if err != nil {
		tb.Fatalf("reading vectors: %v", err)
	}
	return string(b)
}

// section returns the text of the "### <num> ..." section.
func section(tb testing.TB, doc, num string) string {
	tb.Helper()
	i := strings.Index(doc, "### "+num+" ")
	if i < 0 {
		tb.Fatalf("section %s not found", num)
	}
	rest := doc[i+4:]
	if j := strings.Index(rest, "\n### "); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

// fenced returns the first fenced block after the first occurrence of marker.
func fenced(tb testing.TB, text, marker string) string {
	tb.Helper()
	i := strings.Index(text, marker)
	if i < 0 {
		tb.Fatalf("marker %q not found", marker)
	}
	rest := text[i:]
	start := strings.Index(rest, "```\n")
	if start < 0 {
		tb.Fatalf("no block after %q", marker)
	}
	rest = rest[start+4:]
	end := strings.Index(rest, "\n```")
	if end < 0 {
		tb.Fatalf("unterminated block after %q", marker)
	}
	return rest[:end]
}

// fencedHex decodes the fenced block following the `name` label.
func fencedHex(tb testing.TB, text, name string) []byte {
	tb.Helper()
	return mustHex(tb, fenced(tb, text, "`"+name+"`"))
}

// inlineHex decodes a "`NAME`: `hex`" line.
func inlineHex(tb testing.TB, text, name string) []byte {
	tb.Helper()
	marker := "`" + name + "`: `"
	i := strings.Index(text, marker)
	if i < 0 {
		tb.Fatalf("inline value %s not found", name)
	}
	rest := text[i+len(marker):]
	return mustHex(tb, rest[:strings.Index(rest, "`")])
}

// tableValue returns the backquoted value of the table row whose first cell
// starts with key.
func tableValue(tb testing.TB, text, key string) string {
	tb.Helper()
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "| "+key) {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 3 {
			break
		}
		v := strings.TrimSpace(cells[2])
		return strings.Trim(strings.Fields(v)[0], "`")
	}
	tb.Fatalf("table row %q not found", key)
	return ""
}

func tableHex(tb testing.TB, text, key string) []byte {
	tb.Helper()
	return mustHex(tb, tableValue(tb, text, key))
}

func mustHex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil {
		tb.Fatalf("decoding hex: %v", err)
	}
	return b
}

func param(tb testing.TB, b []byte) [32]byte {
	tb.Helper()
	if len(b) != 32 {
		tb.Fatalf("param is %d bytes, want 32", len(b))
	}
	return [32]byte(b)
}

// vectors holds the values used by the tests, all read from the vector file.
type vectors struct {
	// §8.1 registration
	regAppID       string
	regClientData  []byte
	regAppParam    [32]byte
	regChalParam   [32]byte
	regRaw         []byte
	regCert        []byte
	regSignedBytes []byte
	regSignature   []byte
	regUserPub     []byte
	regUserPriv    []byte
	regKeyHandle   []byte
	regAttPub      []byte
	regAttPriv     []byte
	// §8.2 authentication
	authClientData  []byte
	authAppParam    [32]byte
	authChalParam   [32]byte
	authUserPub     []byte
	authUserPriv    []byte
	authRaw         []byte
	authSignedBytes []byte
	authSignature   []byte
	// chained set
	chainRegRaw    []byte
	chainKeyHandle []byte
	chainUserPub   []byte
	chainAuthRaw   []byte
}

func loadVectors(tb testing.TB) vectors {
	tb.Helper()
	doc := readVectors(tb)
	s1, s2, s3 := section(tb, doc, "1.1"), section(tb, doc, "1.2"), section(tb, doc, "1.3")
	return vectors{
		regAppID:       tableValue(tb, s1, "app ID"),
		regClientData:  []byte(fenced(tb, s1, "Client data")),
		regAppParam:    param(tb, tableHex(tb, s1, "appParam")),
		regChalParam:   param(tb, tableHex(tb, s1, "chalParam")),
		regRaw:         fencedHex(tb, s1, "REGISTRATION_RESPONSE_DATA"),
		regCert:        mustHex(tb, fenced(tb, s1, "Attestation cert (DER")),
		regSignedBytes: fencedHex(tb, s1, "EXPECTED_REGISTER_SIGNED_BYTES"),
		regSignature:   fencedHex(tb, s1, "SIGNATURE_ENROLL"),
		regUserPub:     tableHex(tb, s1, "user public key"),
		regUserPriv:    tableHex(tb, s1, "user private key"),
		regKeyHandle:   tableHex(tb, s1, "key handle"),
		regAttPub:      tableHex(tb, s1, "attestation public key"),
		regAttPriv:     tableHex(tb, s1, "attestation private key"),

		authClientData:  []byte(fenced(tb, s2, "Client data")),
		authAppParam:    param(tb, tableHex(tb, s2, "appParam")),
		authChalParam:   param(tb, tableHex(tb, s2, "chalParam")),
		authUserPub:     tableHex(tb, s2, "user public key"),
		authUserPriv:    tableHex(tb, s2, "user private key"),
		authRaw:         fencedHex(tb, s2, "SIGN_RESPONSE_DATA"),
		authSignedBytes: fencedHex(tb, s2, "EXPECTED_AUTHENTICATE_SIGNED_BYTES"),
		authSignature:   fencedHex(tb, s2, "SIGNATURE_AUTHENTICATE"),

		chainRegRaw:    fencedHex(tb, s3, "REGISTRATION_DATA_2"),
		chainKeyHandle: inlineHex(tb, s3, "KEY_HANDLE_2"),
		chainUserPub:   inlineHex(tb, s3, "USER_PUBLIC_KEY_2"),
		chainAuthRaw:   fencedHex(tb, s3, "SIGN_DATA_2"),
	}
}

func TestVectorFileLoads(t *testing.T) {
	v := loadVectors(t)
	for _, c := range []struct {
		name string
		got  int
		want int
	}{
		{"registration response", len(v.regRaw), 522},
		{"attestation certificate", len(v.regCert), 320},
		{"register signed bytes", len(v.regSignedBytes), 194},
		{"enroll signature", len(v.regSignature), 71},
		{"authentication response", len(v.authRaw), 75},
		{"authenticate signed bytes", len(v.authSignedBytes), 69},
		{"chained registration", len(v.chainRegRaw), 531},
		{"chained authentication", len(v.chainAuthRaw), 76},
		{"key handle", len(v.regKeyHandle), 64},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Errorf("length %d, want %d", c.got, c.want)
			}
		})
	}
}
