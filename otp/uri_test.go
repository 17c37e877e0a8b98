package otp_test

import (
	"bytes"
	"image/color"
	"image/png"
	"maps"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/boombuler/barcode/qr"
	potp "github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/mfad/mfad/otp"
)

func TestURI(t *testing.T) {
	s := otp.Secret("12345678901234567890")
	tests := []struct {
		name            string
		issuer, account string
		p               otp.Params
		wantPath        string // escaped path
		wantQuery       url.Values
	}{
		{
			name: "default", issuer: "Example Corp", account: "alice@example.com", p: otp.DefaultParams(),
			wantPath: "/Example%20Corp:alice@example.com",
			wantQuery: url.Values{"secret": {"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"}, "issuer": {"Example Corp"},
				"algorithm": {"SHA1"}, "digits": {"6"}, "period": {"30"}},
		},
		{
			name: "sha512 8 digits 60s", issuer: "mfad", account: "bob", p: otp.Params{Digits: 8, Period: time.Minute, Algorithm: otp.SHA512},
			wantPath: "/mfad:bob",
			wantQuery: url.Values{"secret": {"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"}, "issuer": {"mfad"},
				"algorithm": {"SHA512"}, "digits": {"8"}, "period": {"60"}},
		},
		{
			name: "colons are escaped", issuer: "ACME:Labs", account: "c:d", p: otp.DefaultParams(),
			wantPath: "/ACME%3ALabs:c%3Ad",
			wantQuery: url.Values{"secret": {"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"}, "issuer": {"ACME:Labs"},
				"algorithm": {"SHA1"}, "digits": {"6"}, "period": {"30"}},
		},
		{
			name: "query metacharacters", issuer: "A&B=C+D?", account: "x/y", p: otp.DefaultParams(),
			wantPath: "/A&B=C+D%3F:x%2Fy",
			wantQuery: url.Values{"secret": {"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"}, "issuer": {"A&B=C+D?"},
				"algorithm": {"SHA1"}, "digits": {"6"}, "period": {"30"}},
		},
		{
			name: "no issuer", issuer: "", account: "carol", p: otp.DefaultParams(),
			wantPath: "/carol",
			wantQuery: url.Values{"secret": {"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"},
				"algorithm": {"SHA1"}, "digits": {"6"}, "period": {"30"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			uri := otp.URI(s, tc.issuer, tc.account, tc.p)
			u, err := url.Parse(uri)
			if err != nil {
				t.Fatal(err)
			}
			if u.Scheme != "otpauth" || u.Host != "totp" {
				t.Errorf("scheme/host = %q/%q, want otpauth/totp", u.Scheme, u.Host)
			}
			if got := u.EscapedPath(); got != tc.wantPath {
				t.Errorf("path = %q, want %q", got, tc.wantPath)
			}
			if strings.Contains(u.RawQuery, "+") {
				t.Errorf("query %q encodes spaces as '+'", u.RawQuery)
			}
			q, err := url.ParseQuery(u.RawQuery)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.EqualFunc(q, tc.wantQuery, slices.Equal) {
				t.Errorf("query = %v, want %v", q, tc.wantQuery)
			}
		})
	}
}

// TestURILibraryAccepts checks that the otp library reads our URI back as
// the same key, and computes the same codes from it.
func TestURILibraryAccepts(t *testing.T) {
	tests := []struct {
		name            string
		issuer, account string
		p               otp.Params
		wantAlg         potp.Algorithm
	}{
		{"sha1", "Example Corp", "alice@example.com", otp.DefaultParams(), potp.AlgorithmSHA1},
		{"sha256", "mfad", "bob", otp.Params{Digits: 8, Period: time.Minute, Algorithm: otp.SHA256}, potp.AlgorithmSHA256},
		{"sha512", "mfad", "carol", otp.Params{Digits: 7, Period: 30 * time.Second, Algorithm: otp.SHA512}, potp.AlgorithmSHA512},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := otp.NewSecret(nil)
			if err != nil {
				t.Fatal(err)
			}
			key, err := potp.NewKeyFromURL(otp.URI(s, tc.issuer, tc.account, tc.p))
			if err != nil {
				t.Fatal(err)
			}
			if key.Type() != "totp" || key.Issuer() != tc.issuer || key.AccountName() != tc.account {
				t.Errorf("type, issuer, account = %q, %q, %q", key.Type(), key.Issuer(), key.AccountName())
			}
			got, err := otp.ParseBase32(key.Secret())
			if err != nil || !bytes.Equal(got, s) {
				t.Fatalf("library secret does not round-trip: %v", err)
			}
			if key.Period() != uint64(tc.p.Period/time.Second) || int(key.Digits()) != tc.p.Digits || key.Algorithm() != tc.wantAlg {
				t.Errorf("period, digits, algorithm = %d, %d, %v", key.Period(), key.Digits(), key.Algorithm())
			}
			now := time.Unix(1700000000, 0)
			libCode, err := totp.GenerateCodeCustom(key.Secret(), now, totp.ValidateOpts{
				Period: uint(key.Period()), Digits: key.Digits(), Algorithm: key.Algorithm(),
			})
			if err != nil {
				t.Fatal(err)
			}
			if want := otp.Code(s, otp.Counter(now, tc.p), tc.p); libCode != want {
				t.Errorf("library code %s, ours %s", libCode, want)
			}
		})
	}
}

// TestURIMatchesLibraryGenerate compares our URI with the one the otp
// library builds for the same key, parameter by parameter.
func TestURIMatchesLibraryGenerate(t *testing.T) {
	s := otp.Secret("12345678901234567890")
	p := otp.Params{Digits: 8, Period: time.Minute, Algorithm: otp.SHA256}
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer: "Example Corp", AccountName: "alice@example.com", Secret: s,
		Period: 60, Digits: potp.DigitsEight, Algorithm: potp.AlgorithmSHA256,
	})
	if err != nil {
		t.Fatal(err)
	}
	lib, err := url.Parse(key.URL())
	if err != nil {
		t.Fatal(err)
	}
	ours, err := url.Parse(otp.URI(s, "Example Corp", "alice@example.com", p))
	if err != nil {
		t.Fatal(err)
	}
	if ours.Scheme != lib.Scheme || ours.Host != lib.Host || ours.Path != lib.Path {
		t.Errorf("ours %s://%s%s, library %s://%s%s", ours.Scheme, ours.Host, ours.Path, lib.Scheme, lib.Host, lib.Path)
	}
	if oq, lq := ours.Query(), lib.Query(); !maps.EqualFunc(oq, lq, slices.Equal) {
		t.Errorf("query: ours %v, library %v", oq, lq)
	}
}

func TestQRPNG(t *testing.T) {
	s, err := otp.NewSecret(nil)
	if err != nil {
		t.Fatal(err)
	}
	uri := otp.URI(s, "Example Corp", "alice@example.com", otp.DefaultParams())

	t.Run("image encodes the uri", func(t *testing.T) {
		const size = 300
		data, err := otp.QRPNG(uri, size)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if b := img.Bounds(); b.Dx() != size || b.Dy() != size {
			t.Fatalf("image is %dx%d, want %dx%d", b.Dx(), b.Dy(), size, size)
		}
		// Compare every module of the reference symbol with the pixel at
		// the centre of the corresponding cell.
		ref, err := qr.Encode(uri, qr.M, qr.Auto)
		if err != nil {
			t.Fatal(err)
		}
		modules := ref.Bounds().Dx()
		scale := size / modules
		margin := (size - modules*scale) / 2
		for y := range modules {
			for x := range modules {
				want := dark(ref.At(x, y))
				got := dark(img.At(margin+x*scale+scale/2, margin+y*scale+scale/2))
				if got != want {
					t.Fatalf("module (%d,%d) dark=%v, want %v", x, y, got, want)
				}
			}
		}
		// The top-left finder pattern: a dark 7x7 ring around a light ring.
		if !dark(img.At(margin+scale/2, margin+scale/2)) || dark(img.At(margin+scale+scale/2, margin+scale+scale/2)) {
			t.Error("top-left finder pattern not found")
		}
		again, err := otp.QRPNG(uri, size)
		if err != nil || !bytes.Equal(again, data) {
			t.Errorf("QRPNG is not deterministic (err %v)", err)
		}
	})

	tests := []struct {
		name string
		uri  string
		size int
	}{
		{"size zero", uri, 0},
		{"negative size", uri, -5},
		{"too large", uri, otp.MaxQRSize + 1},
		{"smaller than the symbol", uri, otp.MinQRSize},
		{"content too long", uri + strings.Repeat("x", 5000), 1000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, err := otp.QRPNG(tc.uri, tc.size)
			if err == nil {
				t.Fatalf("QRPNG succeeded with %d bytes", len(data))
			}
			assertNoSecret(t, "error", err.Error(), s)
		})
	}
}

func dark(c color.Color) bool {
	g := color.GrayModel.Convert(c).(color.Gray)
	return g.Y < 128
}
