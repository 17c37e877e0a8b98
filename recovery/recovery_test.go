package recovery_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/bits"
	"regexp"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/mfad/mfad/recovery"
)

var displayRE = regexp.MustCompile(`^[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}$`)

func testKey() []byte { return bytes.Repeat([]byte{0x42}, 32) }

func newHasher(t testing.TB) *recovery.Hasher {
	t.Helper()
	h, err := recovery.NewHasher(testKey())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestGenerateFormat(t *testing.T) {
	tests := []struct {
		name string
		n    int
		want int
	}{
		{"default", 0, recovery.DefaultCount},
		{"one", 1, 1},
		{"ten", 10, 10},
		{"max", recovery.MaxCount, recovery.MaxCount},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			codes, err := recovery.Generate(nil, tc.n)
			if err != nil {
				t.Fatal(err)
			}
			if len(codes) != tc.want {
				t.Fatalf("got %d codes, want %d", len(codes), tc.want)
			}
			for _, c := range codes {
				if !displayRE.MatchString(c.Reveal()) {
					t.Errorf("code %q does not match %s", c.Reveal(), displayRE)
				}
			}
		})
	}
	if recovery.DefaultCount != 8 {
		t.Errorf("DefaultCount = %d, want 8", recovery.DefaultCount)
	}
}

func TestGenerateEntropy(t *testing.T) {
	const sets, perSet = 50, 20
	seen := map[string]bool{}
	var ones int
	var everSet, everClear uint64
	for range sets {
		codes, err := recovery.Generate(nil, perSet)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range codes {
			canonical, ok := recovery.Normalize(c.Reveal())
			if !ok {
				t.Fatalf("generated code does not normalise")
			}
			raw, err := hex.DecodeString(canonical)
			if err != nil || len(raw) != 8 {
				t.Fatalf("decoded code is %d bytes (%v), want 8", len(raw), err)
			}
			if seen[canonical] {
				t.Fatal("duplicate code")
			}
			seen[canonical] = true
			v := uint64(0)
			for _, b := range raw {
				v = v<<8 | uint64(b)
			}
			ones += bits.OnesCount64(v)
			everSet |= v
			everClear |= ^v
		}
	}
	// Every one of the 64 bit positions varies, and about half of all bits
	// are set (1000 codes: mean 32000, standard deviation ~126).
	if everSet != ^uint64(0) || everClear != ^uint64(0) {
		t.Errorf("some bit positions never vary: set %016x, clear %016x", everSet, everClear)
	}
	if total := sets * perSet * 64; ones < total/2-1000 || ones > total/2+1000 {
		t.Errorf("%d of %d bits set, want about half", ones, total)
	}
}

// counting yields 0, 1, 2, ...
type counting struct{ next byte }

func (c *counting) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = c.next
		c.next++
	}
	return len(p), nil
}

func TestGenerateDeterministic(t *testing.T) {
	tests := []struct {
		name string
		r    func() *counting
		n    int
		want []string
	}{
		{
			name: "counting reader", r: func() *counting { return &counting{} }, n: 3,
			want: []string{"0001-0203-0405-0607", "0809-0a0b-0c0d-0e0f", "1011-1213-1415-1617"},
		},
		{
			name: "high bytes", r: func() *counting { return &counting{next: 0xf8} }, n: 1,
			want: []string{"f8f9-fafb-fcfd-feff"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			codes, err := recovery.Generate(tc.r(), tc.n)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range codes {
				got = append(got, c.Reveal())
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("Generate = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestGenerateErrors(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name    string
		r       io.Reader
		n       int
		wantErr error
	}{
		{"negative count", nil, -1, nil},
		{"too many", nil, recovery.MaxCount + 1, nil},
		{"short reader", bytes.NewReader(make([]byte, 12)), 2, nil},
		{"failing reader", iotest.ErrReader(boom), 1, boom},
		{"constant reader repeats", bytes.NewReader(make([]byte, 64)), 2, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			codes, err := recovery.Generate(tc.r, tc.n)
			if err == nil {
				t.Fatalf("Generate succeeded with %d codes", len(codes))
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("Generate = %v, want wrapped %v", err, tc.wantErr)
			}
			if codes != nil {
				t.Errorf("codes returned with error")
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	const want = "a1b2c3d4e5f6a7b8"
	tests := []struct {
		name  string
		input string
		want  string
		ok    bool
	}{
		{"display form", "a1b2-c3d4-e5f6-a7b8", want, true},
		{"canonical", "a1b2c3d4e5f6a7b8", want, true},
		{"upper case", "A1B2-C3D4-E5F6-A7B8", want, true},
		{"mixed case", "a1B2-c3D4-E5f6-a7b8", want, true},
		{"spaces", "a1b2 c3d4 e5f6 a7b8", want, true},
		{"surrounding spaces", "  a1b2-c3d4-e5f6-a7b8  ", want, true},
		{"odd grouping", "a-1-b2c3 d4e5f6--a7b8", want, true},
		{"all digits", "0000-0000-0000-0000", "0000000000000000", true},
		{"empty", "", "", false},
		{"only separators", "- - - -", "", false},
		{"too short", "a1b2-c3d4-e5f6-a7b", "", false},
		{"too long", "a1b2-c3d4-e5f6-a7b8-0", "", false},
		{"non-hex letter", "a1b2-c3d4-e5f6-a7bg", "", false},
		{"upper non-hex", "A1B2-C3D4-E5F6-A7BZ", "", false},
		{"tab", "a1b2\tc3d4e5f6a7b8", "", false},
		{"underscore", "a1b2_c3d4_e5f6_a7b8", "", false},
		{"newline", "a1b2c3d4e5f6a7b8\n", "", false},
		{"fullwidth letters", "ａ1b2c3d4e5f6a7b8", "", false},
		{"unicode dash", "a1b2\u2010c3d4\u2010e5f6\u2010a7b8", "", false},
		{"non-breaking space", "a1b2\u00a0c3d4e5f6a7b8", "", false},
		{"kelvin sign folds to k, not hex", "a1b2c3d4e5f6a7b\u212a", "", false},
		{"invalid utf-8", "a1b2c3d4e5f6a7b\xff", "", false},
		{"very long", strings.Repeat(" ", 100) + want, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := recovery.Normalize(tc.input)
			if got != tc.want || ok != tc.ok {
				t.Errorf("Normalize(%q) = %q, %v; want %q, %v", tc.input, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestNewHasher(t *testing.T) {
	tests := []struct {
		name   string
		keyLen int
		ok     bool
	}{
		{"nil", 0, false},
		{"31 bytes", 31, false},
		{"32 bytes", 32, true},
		{"64 bytes", 64, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := recovery.NewHasher(make([]byte, tc.keyLen))
			if tc.ok != (err == nil) || tc.ok != (h != nil) {
				t.Errorf("NewHasher(%d bytes) = %v, %v", tc.keyLen, h, err)
			}
		})
	}
}

func TestHash(t *testing.T) {
	key := testKey()
	h := newHasher(t)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("mfad recovery v1\x00a1b2c3d4e5f6a7b8"))
	if got, want := h.Hash("a1b2c3d4e5f6a7b8"), mac.Sum(nil); !bytes.Equal(got, want) {
		t.Errorf("Hash = %x, want %x", got, want)
	}
	// The key is copied: changing the caller's slice changes nothing.
	key2 := testKey()
	h2, err := recovery.NewHasher(key2)
	if err != nil {
		t.Fatal(err)
	}
	key2[0] ^= 1
	if !bytes.Equal(h2.Hash("x"), h.Hash("x")) {
		t.Error("Hasher depends on the caller's key slice after NewHasher")
	}
	other, err := recovery.NewHasher(bytes.Repeat([]byte{0x43}, 32))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(other.Hash("x"), h.Hash("x")) {
		t.Error("different keys give the same hash")
	}
}

func TestNewID(t *testing.T) {
	id, err := recovery.NewID(&counting{})
	if err != nil {
		t.Fatal(err)
	}
	if id != "000102030405060708090a0b" {
		t.Errorf("NewID = %q", id)
	}
	a, err := recovery.NewID(nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := recovery.NewID(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 24 || a == b {
		t.Errorf("NewID(nil) = %q, %q; want distinct 24-digit ids", a, b)
	}
	if _, err := recovery.NewID(bytes.NewReader(make([]byte, 11))); err == nil {
		t.Error("NewID with a short reader succeeded")
	}
}

// fixture returns a Set of the codes from a counting reader.
func fixture(t testing.TB) (*recovery.Hasher, []recovery.Code, *recovery.Set) {
	t.Helper()
	h := newHasher(t)
	codes, err := recovery.Generate(&counting{}, 4)
	if err != nil {
		t.Fatal(err)
	}
	return h, codes, recovery.NewSet(h, codes, "5e75e75e75e75e75e75e75e7", time.Unix(1700000000, 0))
}

func TestNewSet(t *testing.T) {
	h, codes, s := fixture(t)
	if s.ID != "5e75e75e75e75e75e75e75e7" || !s.Created.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("ID, Created = %q, %v", s.ID, s.Created)
	}
	if len(s.Hashes) != 4 || len(s.Used) != 4 || s.Remaining() != 4 {
		t.Fatalf("hashes %d, used %d, remaining %d; want 4 each", len(s.Hashes), len(s.Used), s.Remaining())
	}
	for i, c := range codes {
		canonical, _ := recovery.Normalize(c.Reveal())
		if !bytes.Equal(s.Hashes[i], h.Hash(canonical)) {
			t.Errorf("hash %d does not match its code", i)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("NewSet with a malformed code did not panic")
		}
	}()
	recovery.NewSet(h, []recovery.Code{"not a code"}, "id", time.Unix(1, 0))
}

func TestConsume(t *testing.T) {
	t0 := time.Unix(1700000100, 0)
	type step struct {
		input   func(codes []recovery.Code) string
		hasher  string // "" = fixture hasher, "other" = different key
		want    int
		wantErr error
	}
	code := func(i int) func([]recovery.Code) string {
		return func(c []recovery.Code) string { return c[i].Reveal() }
	}
	literal := func(s string) func([]recovery.Code) string {
		return func([]recovery.Code) string { return s }
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"first code", []step{{input: code(0), want: 3}}},
		{"every code in turn", []step{
			{input: code(2), want: 3}, {input: code(0), want: 2}, {input: code(3), want: 1}, {input: code(1), want: 0},
		}},
		{"reuse is ErrUsed", []step{{input: code(1), want: 3}, {input: code(1), wantErr: recovery.ErrUsed}}},
		{"reuse in other form is ErrUsed", []step{
			{input: code(1), want: 3},
			{input: func(c []recovery.Code) string { return strings.ToUpper(strings.ReplaceAll(c[1].Reveal(), "-", " ")) }, wantErr: recovery.ErrUsed},
		}},
		{"upper case without dashes", []step{
			{input: func(c []recovery.Code) string { return strings.ToUpper(strings.ReplaceAll(c[3].Reveal(), "-", "")) }, want: 3},
		}},
		{"unknown code", []step{{input: literal("ffff-ffff-ffff-ffff"), wantErr: recovery.ErrInvalid}}},
		{"malformed", []step{{input: literal("ffff-ffff-ffff"), wantErr: recovery.ErrMalformed}}},
		{"empty", []step{{input: literal(""), wantErr: recovery.ErrMalformed}}},
		{"wrong key", []step{{input: code(0), hasher: "other", wantErr: recovery.ErrInvalid}}},
		{"failures do not consume", []step{
			{input: literal("ffff-ffff-ffff-ffff"), wantErr: recovery.ErrInvalid},
			{input: code(0), hasher: "other", wantErr: recovery.ErrInvalid},
			{input: code(0), want: 3},
		}},
	}
	other, err := recovery.NewHasher(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, codes, s := fixture(t)
			for i, st := range tc.steps {
				hh := h
				if st.hasher == "other" {
					hh = other
				}
				before := clone(t, s)
				now := t0.Add(time.Duration(i) * time.Minute)
				got, err := s.Consume(hh, st.input(codes), now)
				if st.wantErr != nil {
					if !errors.Is(err, st.wantErr) || !errors.Is(err, recovery.ErrInvalid) {
						t.Fatalf("step %d: Consume = %d, %v; want %v", i, got, err, st.wantErr)
					}
					if st.wantErr == recovery.ErrInvalid && (errors.Is(err, recovery.ErrUsed) || errors.Is(err, recovery.ErrMalformed)) {
						t.Fatalf("step %d: Consume = %v, want plain ErrInvalid", i, err)
					}
					if after := clone(t, s); after != before {
						t.Fatalf("step %d: failed Consume changed the set:\n%s\n%s", i, before, after)
					}
					continue
				}
				if err != nil || got != st.want || s.Remaining() != st.want {
					t.Fatalf("step %d: Consume = %d, %v (Remaining %d); want %d", i, got, err, s.Remaining(), st.want)
				}
				marked := 0
				for _, u := range s.Used {
					if u.Equal(now) {
						marked++
					}
				}
				if marked != 1 {
					t.Fatalf("step %d: %d codes marked used at %v, want 1", i, marked, now)
				}
			}
		})
	}
}

func TestConsumeRejectsBadState(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*recovery.Set)
		now    time.Time
	}{
		{"zero time", func(*recovery.Set) {}, time.Time{}},
		{"missing used marks", func(s *recovery.Set) { s.Used = s.Used[:2] }, time.Unix(1, 0)},
		{"extra used marks", func(s *recovery.Set) { s.Used = append(s.Used, time.Time{}) }, time.Unix(1, 0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, codes, s := fixture(t)
			tc.mutate(s)
			before := clone(t, s)
			_, err := s.Consume(h, codes[0].Reveal(), tc.now)
			if err == nil || errors.Is(err, recovery.ErrInvalid) {
				t.Fatalf("Consume = %v, want a non-ErrInvalid error", err)
			}
			if clone(t, s) != before {
				t.Error("failed Consume changed the set")
			}
		})
	}
}

func clone(t testing.TB, s *recovery.Set) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// codeForms are the spellings of a code that must never appear in stored
// or logged output.
func codeForms(c recovery.Code) []string {
	canonical, _ := recovery.Normalize(c.Reveal())
	return []string{c.Reveal(), canonical, strings.ToUpper(canonical), strings.ToUpper(c.Reveal())}
}

func TestSetJSONHoldsNoCode(t *testing.T) {
	h, codes, s := fixture(t)
	if _, err := s.Consume(h, codes[1].Reveal(), time.Unix(1700000200, 0)); err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range codes {
		for _, form := range codeForms(c) {
			if bytes.Contains(data, []byte(form)) {
				t.Errorf("set JSON contains %q: %s", form, data)
			}
		}
	}
	var back recovery.Set
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if back.Remaining() != 3 || back.ID != s.ID || !back.Created.Equal(s.Created) {
		t.Fatalf("round trip: remaining %d, id %q, created %v", back.Remaining(), back.ID, back.Created)
	}
	if _, err := back.Consume(h, codes[1].Reveal(), time.Unix(1700000300, 0)); !errors.Is(err, recovery.ErrUsed) {
		t.Errorf("used mark lost in JSON: %v", err)
	}
	if n, err := back.Consume(h, codes[2].Reveal(), time.Unix(1700000300, 0)); err != nil || n != 2 {
		t.Errorf("Consume after round trip = %d, %v", n, err)
	}
}

func TestCodeRedaction(t *testing.T) {
	codes, err := recovery.Generate(&counting{next: 0xa0}, 1)
	if err != nil {
		t.Fatal(err)
	}
	c := codes[0]
	type record struct{ C recovery.Code }
	check := func(t *testing.T, out string) {
		t.Helper()
		for _, form := range codeForms(c) {
			if strings.Contains(out, form) {
				t.Errorf("output contains the code (%q): %s", form, out)
			}
		}
	}

	t.Run("fmt", func(t *testing.T) {
		tests := []struct {
			name, out, want string
		}{
			{"v s +v", fmt.Sprintf("%v %s %+v", c, c, record{c}), "[redacted] [redacted] {C:[redacted]}"},
			{"go syntax", fmt.Sprintf("%#v", c), "[redacted]"},
			{"quoted", fmt.Sprintf("%q", c), "[redacted]"},
			{"hex", fmt.Sprintf("%x", c), "[redacted]"},
			{"slice", fmt.Sprint(codes), "[[redacted]]"},
			{"String", c.String(), "[redacted]"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if tc.out != tc.want {
					t.Errorf("got %q, want %q", tc.out, tc.want)
				}
				check(t, tc.out)
			})
		}
	})
	t.Run("slog", func(t *testing.T) {
		var buf bytes.Buffer
		for _, hd := range []slog.Handler{slog.NewJSONHandler(&buf, nil), slog.NewTextHandler(&buf, nil)} {
			slog.New(hd).Info("issued", "code", c, "codes", codes, "record", record{c})
		}
		if !strings.Contains(buf.String(), "[redacted]") {
			t.Errorf("no redaction marker: %s", buf.String())
		}
		check(t, buf.String())
	})
	t.Run("json", func(t *testing.T) {
		out, err := json.Marshal(record{c})
		if err == nil {
			t.Fatalf("json.Marshal succeeded: %s", out)
		}
		check(t, string(out)+err.Error())
	})
	if c.Reveal() != "a0a1-a2a3-a4a5-a6a7" {
		t.Errorf("Reveal = %q", c.Reveal())
	}
}
