package pam

// The fuzzers drive the C parsers through the sanitizer-built harness, so a
// memory error aborts it and fails the input; where Go has an equivalent
// (net/http, encoding/json, unicode), its answer is the oracle.
//
//	go test -run '^$' -fuzz FuzzHTTPResponse -fuzztime 1m ./pam/
//	go test -run '^$' -fuzz FuzzJSONString -fuzztime 1m ./pam/
//	go test -run '^$' -fuzz FuzzBodies -fuzztime 1m ./pam/
//	go test -run '^$' -fuzz FuzzVerifyResponse -fuzztime 1m ./pam/
//	go test -run '^$' -fuzz FuzzLoginResponse -fuzztime 1m ./pam/

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/mfad/mfad/api/wire"
)

func FuzzHTTPResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: no-store\r\nDate: Mon, 01 Dec 2025 13:00:00 GMT\r\nContent-Length: 18\r\nConnection: close\r\n\r\n{\"result\":\"ok\"}\n\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3;ext=1\r\n:1}\r\n0\r\nX-Trailer: 1\r\n\r\n",
		"HTTP/1.0 404 Not Found\r\n\r\n{\"error\":{\"code\":\"not_found\",\"message\":\"x\"}}",
		"HTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var a httpAnswer
		callHarness(t, 'h', data, &a)
		if a.RC != parseOK {
			return
		}
		if a.Status < 200 || a.Status > 599 || len(a.Body) > len(data) {
			t.Fatalf("accepted status %d with %d body bytes from %d bytes", a.Status, len(a.Body), len(data))
		}
		// Whatever the module accepts, Go's HTTP client reads the same way.
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(data)), nil)
		if err != nil {
			t.Fatalf("the module accepts what net/http refuses (%v): %q", err, data)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("the module accepts a body net/http cannot read (%v): %q", err, data)
		}
		if resp.StatusCode != a.Status || !bytes.Equal(body, []byte(a.Body)) {
			t.Fatalf("module: %d %q; net/http: %d %q; input %q", a.Status, a.Body, resp.StatusCode, body, data)
		}
	})
}

func FuzzJSONString(f *testing.F) {
	for _, s := range []string{"alice", `"\`, "\x00\x1f\x7f", "é✓😀", "\xff", "\xed\xa0\x80", "\xf0\x9f\x98"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var a escapeAnswer
		callHarness(t, 'j', data, &a)
		if !utf8.Valid(data) {
			if a.RC != -1 {
				t.Fatalf("invalid UTF-8 %q encoded as %s", data, a.JSON)
			}
			return
		}
		var got string
		if a.RC != 0 || json.Unmarshal([]byte(a.JSON), &got) != nil || got != string(data) {
			t.Fatalf("%q: rc %d, encoded %s, decoded %q", data, a.RC, a.JSON, got)
		}
		var v struct{}
		if s := `{"code":` + string(a.JSON) + `}`; json.Unmarshal([]byte(s), &v) != nil {
			t.Fatalf("not a JSON string: %s", a.JSON)
		}
		var valid struct {
			Valid int `json:"valid"`
		}
		callHarness(t, 't', data, &valid)
		if (valid.Valid == 1) != goValidText(data) {
			t.Fatalf("%q: mfad_valid_text=%d, Go says %v", data, valid.Valid, goValidText(data))
		}
	})
}

var loginIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{0,64}$`)

// displayable reports whether s is what the module may show a user: valid
// UTF-8 without control characters.
func displayable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl)
}

func FuzzBodies(f *testing.F) {
	for _, s := range []string{
		`{"login_id":"00ff","decision":"challenge","methods":["totp","recovery"],"default":"totp","reason":"r","expires_in_s":600,"prompt":"p: "}`,
		`{"result":"ok","method":"recovery","recovery_codes_left":3,"recovery_codes_low":true,"message":"m"}`,
		`{"sent_to":"+44•••••0123","expires_in_s":600}`,
		`{"error":{"code":"login_expired","message":"m"}}`,
		`{"decision":"allow","remember":true,"messages":["a","\u0007"],"x":[1,2,{"y":null}],"z":1e400}`,
		`{"result":"ok","remember_token":"abc","messages":["m"]}`,
		"{\"prompt\":\"\\u001b\\ud83d\\ude00\\udc00\"}",
	} {
		for _, kind := range []byte("lvse") {
			f.Add(kind, []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, kind byte, data []byte) {
		var texts []hexString
		switch kind % 4 {
		case 0:
			var a loginAnswer
			callHarness(t, 'l', data, &a)
			if a.RC == 0 {
				if !loginIDRe.MatchString(string(a.LoginID)) || a.Decision == decisionChallenge && a.LoginID == "" {
					t.Fatalf("accepted login id %q (decision %d)", a.LoginID, a.Decision)
				}
				if a.Default&^a.Methods != 0 || a.Methods > 15 {
					t.Fatalf("methods %d default %d", a.Methods, a.Default)
				}
			}
			texts = []hexString{a.Prompt, a.Reason}
			for _, l := range strings.Split(string(a.Messages), "\n") {
				texts = append(texts, hexString(l))
			}
		case 1:
			var a verifyAnswer
			callHarness(t, 'v', data, &a)
			for _, c := range a.RememberToken {
				if c <= ' ' || c >= 0x7f {
					t.Fatalf("remember token %q", a.RememberToken)
				}
			}
			texts = []hexString{a.Reason, a.Message}
			for _, l := range strings.Split(string(a.Messages), "\n") {
				texts = append(texts, hexString(l))
			}
		case 2:
			var a smsAnswer
			callHarness(t, 's', data, &a)
			texts = []hexString{a.SentTo}
		case 3:
			var a errorAnswer
			callHarness(t, 'e', data, &a)
			texts = []hexString{a.Code, a.Message}
		}
		for _, s := range texts {
			if !displayable(string(s)) || len(s) > 512 {
				t.Fatalf("text %q is not safe to display", s)
			}
		}
	})
}

// sanitized is what copy_text makes of a string: control characters
// replaced with '?', cut at a character boundary to fit max bytes.
func sanitized(s string, max int) string {
	var b strings.Builder
	for _, r := range s {
		w := string(r)
		if unicode.IsControl(r) {
			w = "?"
		}
		if b.Len()+len(w) > max {
			break
		}
		b.WriteString(w)
	}
	return b.String()
}

func FuzzVerifyResponse(f *testing.F) {
	f.Add("ok", "recovery", 3, true, "m", "")
	f.Add("ok", "totp", 0, false, "", "tok-abc")
	f.Add("fail", "", -1, false, "code rejected", "clock_drift")
	f.Add("locked", "totp", 1<<40, false, "\x1b[31mred\u2028", "")
	f.Fuzz(func(t *testing.T, result, method string, n int, low bool, message, reason string) {
		v := wire.VerifyResponse{Result: result, Method: method, Message: message, Reason: reason, RecoveryLow: low,
			RememberToken: reason, Messages: []string{message, reason}}
		if n >= 0 {
			v.AttemptsLeft, v.RetryAfter, v.RecoveryRemaining = &n, &n, &n
		}
		body, err := json.Marshal(v)
		if err != nil {
			t.Skip()
		}
		var a verifyAnswer
		callHarness(t, 'v', body, &a)
		// Go's encoder replaces invalid UTF-8; compare with what it sent.
		var sent wire.VerifyResponse
		if err := json.Unmarshal(body, &sent); err != nil {
			t.Fatal(err)
		}
		want := verifyAnswer{Result: map[string]int{"ok": resultOK, "fail": resultFail, "locked": resultLocked}[sent.Result],
			Method:  map[string]int{"u2f": methodU2F, "totp": methodTOTP, "sms": methodSMS, "recovery": methodRecovery}[sent.Method],
			Message: hexString(sanitized(sent.Message, 512)), Reason: hexString(sanitized(sent.Reason, 63)),
			AttemptsLeft: -1, RetryAfter: -1, RecoveryCodesLeft: -1}
		if low {
			want.RecoveryCodesLow = 1
		}
		if len(sent.Reason) <= 1024 && !strings.ContainsFunc(sent.Reason, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
			want.RememberToken = hexString(sent.Reason)
		}
		var ms []string
		for _, m := range sent.Messages {
			if m != "" {
				ms = append(ms, sanitized(m, 512))
			}
		}
		want.Messages = lines(strings.Join(ms, "\n"))
		if n >= 0 {
			c := min(n, 1<<31-1)
			want.AttemptsLeft, want.RetryAfter, want.RecoveryCodesLeft = c, c, c
		}
		if a != want {
			t.Fatalf("from %s\n got  %+v\n want %+v", body, a, want)
		}
	})
}

func FuzzLoginResponse(f *testing.F) {
	f.Add("0123abcd", "challenge", "totp", "recovery", "totp", "Verification code: ", "second factor required", 600)
	f.Add("../x", "allow", "u2f", "", "u2f", "Touch your security key: ", "", 0)
	f.Fuzz(func(t *testing.T, id, decision, m1, m2, def, prompt, reason string, expires int) {
		l := wire.LoginResponse{LoginID: id, Decision: decision, Methods: []string{m1, m2}, Default: def,
			Prompt: prompt, Reason: reason, ExpiresIn: expires}
		body, err := json.Marshal(l)
		if err != nil {
			t.Skip()
		}
		var sent wire.LoginResponse
		if err := json.Unmarshal(body, &sent); err != nil {
			t.Fatal(err)
		}
		var a loginAnswer
		callHarness(t, 'l', body, &a)
		dec := map[string]int{"allow": decisionAllow, "challenge": decisionChallenge, "deny": decisionDeny, "ignore": decisionIgnore}[sent.Decision]
		if !loginIDRe.MatchString(sent.LoginID) || dec == decisionChallenge && sent.LoginID == "" {
			if a.RC != -1 {
				t.Fatalf("login id %q accepted", sent.LoginID)
			}
			return
		}
		bits := map[string]int{"u2f": methodU2F, "totp": methodTOTP, "sms": methodSMS, "recovery": methodRecovery}
		want := loginAnswer{Decision: dec, Methods: bits[sent.Methods[0]] | bits[sent.Methods[1]], LoginID: hexString(sent.LoginID),
			Prompt: hexString(sanitized(sent.Prompt, 512)), Reason: hexString(sanitized(sent.Reason, 512)), ExpiresIn: max(min(expires, 1<<31-1), 0)}
		want.Default = bits[sent.Default] & want.Methods
		if a != want {
			t.Fatalf("from %s\n got  %+v\n want %+v", body, a, want)
		}
	})
}
