package pam

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mfad/mfad/api/wire"
)

// Values of enum mfad_err (src/mfad_client.h).
const (
	errOK = iota
	errConnect
	errPerm
	errUntrusted
	errTimeout
	errIO
	errProto
	errTooBig
	errNoMem
	errInval
)

// Values of the parse results, decisions, results and method bits.
const (
	parseOK   = 0
	parseMore = 1
	parseErr  = -1

	decisionUnknown   = 0
	decisionAllow     = 1
	decisionChallenge = 2
	decisionDeny      = 3
	decisionIgnore    = 4

	resultUnknown = 0
	resultOK      = 1
	resultFail    = 2
	resultLocked  = 3

	methodU2F      = 1
	methodTOTP     = 2
	methodSMS      = 4
	methodRecovery = 8
)

type httpAnswer struct {
	RC       int       `json:"rc"`
	Status   int       `json:"status"`
	Reusable int       `json:"reusable"`
	Body     hexString `json:"body"`
}

type loginAnswer struct {
	RC        int       `json:"rc"`
	Decision  int       `json:"decision"`
	Methods   int       `json:"methods"`
	Default   int       `json:"default"`
	ExpiresIn int       `json:"expires_in_s"`
	Remember  int       `json:"remember"`
	LoginID   hexString `json:"login_id"`
	Prompt    hexString `json:"prompt"`
	Reason    hexString `json:"reason"`
	Messages  lines     `json:"messages"`
}

// lines is a list of hex-encoded strings, compared as one string.
type lines string

func (l *lines) UnmarshalJSON(b []byte) error {
	var hs []hexString
	if err := json.Unmarshal(b, &hs); err != nil {
		return err
	}
	var ss []string
	for _, h := range hs {
		ss = append(ss, string(h))
	}
	*l = lines(strings.Join(ss, "\n"))
	return nil
}

type verifyAnswer struct {
	RC                int       `json:"rc"`
	Result            int       `json:"result"`
	Method            int       `json:"method"`
	AttemptsLeft      int       `json:"attempts_left"`
	RetryAfter        int       `json:"retry_after_s"`
	RecoveryCodesLeft int       `json:"recovery_codes_left"`
	RecoveryCodesLow  int       `json:"recovery_codes_low"`
	Reason            hexString `json:"reason"`
	Message           hexString `json:"message"`
	RememberToken     hexString `json:"remember_token"`
	Messages          lines     `json:"messages"`
}

type smsAnswer struct {
	RC        int       `json:"rc"`
	ExpiresIn int       `json:"expires_in_s"`
	SentTo    hexString `json:"sent_to"`
}

type errorAnswer struct {
	RC      int       `json:"rc"`
	Code    hexString `json:"code"`
	Message hexString `json:"message"`
}

type escapeAnswer struct {
	RC   int       `json:"rc"`
	JSON hexString `json:"json"`
}

func TestHTTPParse(t *testing.T) {
	const ok = "HTTP/1.1 200 OK\r\n"
	tests := []struct {
		name   string
		in     string
		rc     int
		status int
		body   string
	}{
		{"content-length", ok + "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}", parseOK, 200, "{}"},
		{"content-length, data after", ok + "Content-Length: 2\r\n\r\n{}garbage", parseOK, 200, "{}"},
		{"no reason phrase", "HTTP/1.1 404\r\nContent-Length: 1\r\n\r\nx", parseOK, 404, "x"},
		{"http/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", parseOK, 200, "x"},
		{"header case and space", ok + "cOnTeNt-LeNgTh: \t3 \r\n\r\nabc", parseOK, 200, "abc"},
		{"chunked", ok + "Transfer-Encoding: chunked\r\n\r\n2\r\n{\"\r\nC\r\na\":1}xxxxxxx\r\n0\r\n\r\n", parseOK, 200, "{\"a\":1}xxxxxxx"},
		{"chunked with extension and trailer", ok + "Transfer-Encoding: Chunked\r\n\r\n1;x=y\r\na\r\n0\r\nTrailer: v\r\n\r\n", parseOK, 200, "a"},
		{"until eof", ok + "Content-Type: text/plain\r\n\r\nbody", parseOK, 200, "body"},
		{"204 has no body", "HTTP/1.1 204 No Content\r\n\r\n", parseOK, 204, ""},
		{"truncated body", ok + "Content-Length: 10\r\n\r\nabc", parseErr, 0, ""},
		{"truncated headers", ok + "Content-Length: 10\r\n", parseErr, 0, ""},
		{"truncated chunk", ok + "Transfer-Encoding: chunked\r\n\r\n5\r\nab", parseErr, 0, ""},
		{"no last chunk", ok + "Transfer-Encoding: chunked\r\n\r\n1\r\na\r\n", parseErr, 0, ""},
		{"1xx", "HTTP/1.1 100 Continue\r\n\r\n", parseErr, 0, ""},
		{"status 99", "HTTP/1.1 099 x\r\n\r\n", parseErr, 0, ""},
		{"status 600", "HTTP/1.1 600 x\r\n\r\n", parseErr, 0, ""},
		{"http/2", "HTTP/2 200 OK\r\n\r\n", parseErr, 0, ""},
		{"status glued to reason", "HTTP/1.1 200OK\r\n\r\n", parseErr, 0, ""},
		{"both framings", ok + "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n", parseErr, 0, ""},
		{"chunked in http/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n", parseErr, 0, ""},
		{"two content-lengths", ok + "Content-Length: 1\r\nContent-Length: 1\r\n\r\na", parseErr, 0, ""},
		{"content-length list", ok + "Content-Length: 1, 1\r\n\r\na", parseErr, 0, ""},
		{"negative content-length", ok + "Content-Length: -1\r\n\r\na", parseErr, 0, ""},
		{"huge content-length", ok + "Content-Length: 99999999\r\n\r\na", parseErr, 0, ""},
		{"content-length over the limit", ok + "Content-Length: 65537\r\n\r\na", parseErr, 0, ""},
		{"gzip coding", ok + "Transfer-Encoding: gzip, chunked\r\n\r\n", parseErr, 0, ""},
		{"huge chunk", ok + "Transfer-Encoding: chunked\r\n\r\nfffffff\r\n", parseErr, 0, ""},
		{"chunk size junk", ok + "Transfer-Encoding: chunked\r\n\r\n1x\r\na\r\n0\r\n\r\n", parseErr, 0, ""},
		{"chunk without crlf", ok + "Transfer-Encoding: chunked\r\n\r\n1\r\nab0\r\n\r\n", parseErr, 0, ""},
		{"obs-fold", ok + "X: a\r\n b\r\nContent-Length: 0\r\n\r\n", parseErr, 0, ""},
		{"space before colon", ok + "Content-Length : 1\r\n\r\na", parseErr, 0, ""},
		{"no colon", ok + "Content-Length\r\n\r\n", parseErr, 0, ""},
		{"bare lf", "HTTP/1.1 200 OK\nContent-Length: 0\n\n", parseErr, 0, ""},
		{"bare cr", ok + "X: a\rb\r\nContent-Length: 0\r\n\r\n", parseErr, 0, ""},
		{"nul in header", ok + "X: a\x00b\r\nContent-Length: 0\r\n\r\n", parseErr, 0, ""},
		{"control character in a value", ok + "X: a\x1fb\r\nContent-Length: 0\r\n\r\n", parseErr, 0, ""},
		{"tab and obs-text in a value", ok + "X: a\tb\xff\r\nContent-Length: 0\r\n\r\n", parseOK, 200, ""},
		{"malformed trailer", ok + "Transfer-Encoding: chunked\r\n\r\n0\r\n0\r\n\r\n", parseErr, 0, ""},
		{"empty", "", parseErr, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var a httpAnswer
			callHarness(t, 'h', []byte(tc.in), &a)
			if a.RC != tc.rc || a.Status != tc.status || string(a.Body) != tc.body {
				t.Errorf("got rc %d status %d body %q; want rc %d status %d body %q", a.RC, a.Status, a.Body, tc.rc, tc.status, tc.body)
			}
		})
	}
	// Whether the connection can carry another request after the answer.
	reuse := []struct {
		name string
		in   string
		want int
	}{
		{"length-framed", ok + "Content-Length: 2\r\n\r\n{}", 1},
		{"no body", "HTTP/1.1 204 No Content\r\n\r\n", 1},
		{"connection: close", ok + "Connection: close\r\nContent-Length: 2\r\n\r\n{}", 0},
		{"close in a token list", ok + "Connection: Upgrade, CLOSE\r\nContent-Length: 2\r\n\r\n{}", 0},
		{"keep-alive token", ok + "Connection: keep-alive\r\nContent-Length: 2\r\n\r\n{}", 1},
		{"a token that only contains close", ok + "Connection: closed\r\nContent-Length: 2\r\n\r\n{}", 1},
		{"http/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", 0},
		{"data after the body", ok + "Content-Length: 2\r\n\r\n{}HTTP/1.1", 0},
		{"chunked", ok + "Transfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n", 0},
		{"ended by eof", ok + "Content-Type: text/plain\r\n\r\nbody", 0},
	}
	for _, tc := range reuse {
		t.Run("reusable/"+tc.name, func(t *testing.T) {
			var a httpAnswer
			callHarness(t, 'h', []byte(tc.in), &a)
			if a.RC != parseOK || a.Reusable != tc.want {
				t.Errorf("rc %d reusable %d, want reusable %d", a.RC, a.Reusable, tc.want)
			}
		})
	}
	t.Run("over the limit", func(t *testing.T) {
		var a httpAnswer
		callHarness(t, 'h', []byte(ok+"\r\n"+strings.Repeat("x", 64<<10)), &a)
		if a.RC != parseErr {
			t.Errorf("a response over 64 KiB parsed: %+v", a.RC)
		}
	})
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseLogin(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef"
	tests := []struct {
		name string
		in   string
		want loginAnswer
	}{
		{"challenge", string(mustJSON(t, wire.LoginResponse{LoginID: id, Decision: "challenge", Methods: []string{"u2f", "totp", "recovery"},
			Default: "u2f", Reason: "second factor required", ExpiresIn: 600, Prompt: "Touch your security key: "})),
			loginAnswer{Decision: decisionChallenge, Methods: methodU2F | methodTOTP | methodRecovery, Default: methodU2F, ExpiresIn: 600,
				LoginID: id, Prompt: "Touch your security key: ", Reason: "second factor required"}},
		{"allow without id", `{"decision":"allow"}`, loginAnswer{Decision: decisionAllow, ExpiresIn: -1}},
		{"ignore", `{"decision":"ignore","login_id":""}`, loginAnswer{Decision: decisionIgnore, ExpiresIn: -1}},
		{"unknown decision", `{"decision":"maybe","login_id":"x"}`, loginAnswer{Decision: decisionUnknown, ExpiresIn: -1, LoginID: "x"}},
		{"unknown methods and a default not on offer", `{"decision":"challenge","login_id":"a","methods":["push","sms",7],"default":"totp"}`,
			loginAnswer{Decision: decisionChallenge, Methods: methodSMS, ExpiresIn: -1, LoginID: "a"}},
		{"control characters in texts", "{\"decision\":\"deny\",\"reason\":\"a\\u001b[2Jb\\u0085c\\u0000\",\"prompt\":\"p\\n\"}",
			loginAnswer{Decision: decisionDeny, ExpiresIn: -1, Reason: "a?[2Jb?c?", Prompt: "p?"}},
		{"remember and messages", `{"decision":"challenge","login_id":"a","remember":true,"messages":["enrol \u001b by Friday","",7,"two"]}`,
			loginAnswer{Decision: decisionChallenge, ExpiresIn: -1, LoginID: "a", Remember: 1, Messages: "enrol ? by Friday\ntwo"}},
		{"at most 8 messages", `{"decision":"allow","messages":["1","2","3","4","5","6","7","8","9"]}`,
			loginAnswer{Decision: decisionAllow, ExpiresIn: -1, Messages: "1\n2\n3\n4\n5\n6\n7\n8"}},
		{"mistyped optional fields ignored", `{"decision":"allow","expires_in_s":"10","prompt":1,"methods":{}}`,
			loginAnswer{Decision: decisionAllow, ExpiresIn: -1}},
		{"negative number", `{"decision":"allow","expires_in_s":-5}`, loginAnswer{Decision: decisionAllow, ExpiresIn: 0}},
		{"huge number", `{"decision":"allow","expires_in_s":99999999999999}`, loginAnswer{Decision: decisionAllow, ExpiresIn: 1<<31 - 1}},
		{"trailing newline", "{\"decision\":\"allow\"}\n", loginAnswer{Decision: decisionAllow, ExpiresIn: -1}},
		{"escaped key", `{"decis\u0069on":"allow"}`, loginAnswer{Decision: decisionAllow, ExpiresIn: -1}},
		// Refused as a whole:
		{"challenge without id", `{"decision":"challenge","methods":["totp"]}`, loginAnswer{RC: -1}},
		{"id with a slash", `{"decision":"challenge","login_id":"../../v1/verify"}`, loginAnswer{RC: -1}},
		{"id too long", `{"decision":"challenge","login_id":"` + strings.Repeat("a", 65) + `"}`, loginAnswer{RC: -1}},
		{"id with nul", `{"decision":"challenge","login_id":"a\u0000b"}`, loginAnswer{RC: -1}},
		{"no decision", `{"login_id":"a"}`, loginAnswer{RC: -1}},
		{"decision not a string", `{"decision":1}`, loginAnswer{RC: -1}},
		{"case matters", `{"Decision":"allow"}`, loginAnswer{RC: -1}},
		{"array", `[{"decision":"allow"}]`, loginAnswer{RC: -1}},
		{"two objects", `{"decision":"allow"}{"decision":"deny"}`, loginAnswer{RC: -1}},
		{"trailing garbage", `{"decision":"allow"}x`, loginAnswer{RC: -1}},
		{"truncated", `{"decision":"allow"`, loginAnswer{RC: -1}},
		{"invalid utf-8", "{\"decision\":\"allow\",\"reason\":\"\xff\"}", loginAnswer{RC: -1}},
		{"nul byte", "{\"decision\":\"allow\"}\x00", loginAnswer{RC: -1}},
		{"single quotes", `{'decision':'allow'}`, loginAnswer{RC: -1}},
		{"too deep", `{"decision":"allow","x":` + strings.Repeat("[", 20) + strings.Repeat("]", 20) + `}`, loginAnswer{RC: -1}},
		{"empty", ``, loginAnswer{RC: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var a loginAnswer
			callHarness(t, 'l', []byte(tc.in), &a)
			if tc.want.RC != 0 {
				if a.RC != tc.want.RC {
					t.Errorf("got %+v, want refusal", a)
				}
				return
			}
			if a != tc.want {
				t.Errorf("got  %+v\nwant %+v", a, tc.want)
			}
		})
	}
}

func intp(n int) *int { return &n }

func TestParseVerify(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want verifyAnswer
	}{
		{"ok", mustJSON(t, wire.VerifyResponse{Result: "ok", Method: "totp"}),
			verifyAnswer{Result: resultOK, Method: methodTOTP, AttemptsLeft: -1, RetryAfter: -1, RecoveryCodesLeft: -1}},
		{"recovery, low", mustJSON(t, wire.VerifyResponse{Result: "ok", Method: "recovery", RecoveryRemaining: intp(2), RecoveryLow: true,
			Message: "2 recovery codes left; generate a new set soon"}),
			verifyAnswer{Result: resultOK, Method: methodRecovery, AttemptsLeft: -1, RetryAfter: -1, RecoveryCodesLeft: 2, RecoveryCodesLow: 1,
				Message: "2 recovery codes left; generate a new set soon"}},
		{"fail", mustJSON(t, wire.VerifyResponse{Result: "fail", AttemptsLeft: intp(0), Reason: "clock_drift", Message: "code rejected"}),
			verifyAnswer{Result: resultFail, AttemptsLeft: 0, RetryAfter: -1, RecoveryCodesLeft: -1, Reason: "clock_drift", Message: "code rejected"}},
		{"locked", mustJSON(t, wire.VerifyResponse{Result: "locked", RetryAfter: intp(300), Message: "too many failed attempts; try again later"}),
			verifyAnswer{Result: resultLocked, AttemptsLeft: -1, RetryAfter: 300, RecoveryCodesLeft: -1, Message: "too many failed attempts; try again later"}},
		{"remember token and messages", mustJSON(t, wire.VerifyResponse{Result: "ok", Method: "totp", RememberToken: "tok-123_=/+", Messages: []string{"hi"}}),
			verifyAnswer{Result: resultOK, Method: methodTOTP, AttemptsLeft: -1, RetryAfter: -1, RecoveryCodesLeft: -1, RememberToken: "tok-123_=/+", Messages: "hi"}},
		{"unprintable remember token ignored", []byte(`{"result":"ok","remember_token":"a b"}`),
			verifyAnswer{Result: resultOK, AttemptsLeft: -1, RetryAfter: -1, RecoveryCodesLeft: -1}},
		{"unknown result", []byte(`{"result":"maybe"}`),
			verifyAnswer{Result: resultUnknown, AttemptsLeft: -1, RetryAfter: -1, RecoveryCodesLeft: -1}},
		{"float count ignored", []byte(`{"result":"fail","attempts_left":1.5,"recovery_codes_low":"yes"}`),
			verifyAnswer{Result: resultFail, AttemptsLeft: -1, RetryAfter: -1, RecoveryCodesLeft: -1}},
		{"long message cut at a character", []byte(`{"result":"fail","message":"` + strings.Repeat("é", 300) + `"}`),
			verifyAnswer{Result: resultFail, AttemptsLeft: -1, RetryAfter: -1, RecoveryCodesLeft: -1, Message: hexString(strings.Repeat("é", 256))}},
		{"no result", []byte(`{"message":"x"}`), verifyAnswer{RC: -1}},
		{"null result", []byte(`{"result":null}`), verifyAnswer{RC: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var a verifyAnswer
			callHarness(t, 'v', tc.in, &a)
			if tc.want.RC != 0 {
				if a.RC != tc.want.RC {
					t.Errorf("got %+v, want refusal", a)
				}
				return
			}
			if a != tc.want {
				t.Errorf("got  %+v\nwant %+v", a, tc.want)
			}
		})
	}
}

func TestParseSMSAndError(t *testing.T) {
	var s smsAnswer
	callHarness(t, 's', []byte(`{"sent_to":"+44•••••0123","expires_in_s":600}`), &s)
	if s.RC != 0 || s.SentTo != "+44•••••0123" || s.ExpiresIn != 600 {
		t.Errorf("sms: %+v", s)
	}
	callHarness(t, 's', []byte(`{"expires_in_s":600}`), &s)
	if s.RC != -1 {
		t.Errorf("sms without sent_to: %+v", s)
	}
	var e errorAnswer
	callHarness(t, 'e', mustJSON(t, wire.Error{Error: wire.ErrorBody{Code: wire.CodeLoginExpired, Message: "login is unknown"}}), &e)
	if e.RC != 0 || e.Code != "login_expired" || e.Message != "login is unknown" {
		t.Errorf("error: %+v", e)
	}
	for _, in := range []string{`{"error":"x"}`, `{"error":{"message":"x"}}`, `{}`} {
		callHarness(t, 'e', []byte(in), &e)
		if e.RC != -1 {
			t.Errorf("error body %s: %+v", in, e)
		}
	}
}

func TestJSONString(t *testing.T) {
	for _, in := range []string{"", "alice", `a"b\c`, "tab\there\nnl\x00nul\x7fdel", "héllo wörld ✓ 😀", "</script>&", "\u2028"} {
		var a escapeAnswer
		callHarness(t, 'j', []byte(in), &a)
		var got string
		if a.RC != 0 || json.Unmarshal([]byte(a.JSON), &got) != nil || got != in {
			t.Errorf("%q: rc %d, encoded %s, decoded %q", in, a.RC, a.JSON, got)
		}
	}
	for _, in := range []string{"\xff", "a\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe0\x80\xaf"} {
		var a escapeAnswer
		callHarness(t, 'j', []byte(in), &a)
		if a.RC != -1 {
			t.Errorf("%q (invalid UTF-8) encoded as %s", in, a.JSON)
		}
	}
}

// goValidText is the Go statement of mfad_valid_text: what the daemon
// accepts as a user name or login context.
func goValidText(b []byte) bool {
	if len(b) > 256 || !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

func TestValidText(t *testing.T) {
	for _, in := range []string{"alice", "", "al ice", "ünïcödé", "a\tb", "a\x1bb", "a\u0085b", "a\x7f", "\xff", strings.Repeat("a", 256), strings.Repeat("a", 257)} {
		var a struct {
			Valid int `json:"valid"`
		}
		callHarness(t, 't', []byte(in), &a)
		if want := goValidText([]byte(in)); (a.Valid == 1) != want {
			t.Errorf("%q: valid=%d, want %v", in, a.Valid, want)
		}
	}
}

// roundtrip runs mfad_roundtrip through the harness.
func roundtrip(t *testing.T, socket string, timeoutMS int, path, body string) httpAnswer {
	t.Helper()
	var a httpAnswer
	req := fmt.Sprintf("%s\x00%d\x00%d\x00%s\x00%s", socket, timeoutMS, 4294967295, path, body)
	callHarness(t, 'r', []byte(req), &a)
	return a
}

// keepAnswer is the harness's answer to round trips over a kept connection.
type keepAnswer struct {
	RC   []int `json:"rc"` // status, or -error, per trip
	Kept int   `json:"kept"`
}

// keepTrips runs n round trips over one kept connection through the harness.
func keepTrips(t *testing.T, socket string, n int, path, body string) keepAnswer {
	t.Helper()
	var a keepAnswer
	req := fmt.Sprintf("%s\x00%d\x00%d\x00%d\x00%s\x00%s", socket, 10000, 4294967295, n, path, body)
	callHarness(t, 'k', []byte(req), &a)
	return a
}

// listen returns a Unix socket listener in a fresh directory.
func listen(t *testing.T) (net.Listener, string) {
	t.Helper()
	dir, err := os.MkdirTemp(workDir, "rt")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, sock
}

// serveRaw answers every connection with fn.
func serveRaw(l net.Listener, fn func(net.Conn)) {
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fn(c)
			}()
		}
	}()
}

func TestRoundTrip(t *testing.T) {
	t.Run("go http server", func(t *testing.T) {
		l, sock := listen(t)
		reqs := make(chan string, 4)
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			reqs <- fmt.Sprintf("%s %s %s host=%s type=%s len=%d close=%v %s", r.Proto, r.Method, r.URL.Path, r.Host,
				r.Header.Get("Content-Type"), r.ContentLength, r.Close, body)
			w.Header().Set("Content-Type", "application/json")
			if r.URL.Path == "/big" {
				// Larger than net/http buffers: sent chunked.
				w.WriteHeader(http.StatusOK)
				big := `{"result":"fail","message":"` + strings.Repeat("m", 40<<10) + `"}`
				for i := 0; i < len(big); i += 1000 {
					io.WriteString(w, big[i:min(i+1000, len(big))])
					w.(http.Flusher).Flush()
				}
				return
			}
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":{"code":"login_expired","message":"gone"}}`)
		})}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })

		a := roundtrip(t, sock, 10000, "/v1/login/abc/verify", `{"code":"123456"}`)
		if a.RC != errOK || a.Status != 404 || string(a.Body) != "{\"error\":{\"code\":\"login_expired\",\"message\":\"gone\"}}" {
			t.Errorf("small answer: %+v", a)
		}
		if got, want := <-reqs, `HTTP/1.1 POST /v1/login/abc/verify host=mfad type=application/json len=17 close=true {"code":"123456"}`; got != want {
			t.Errorf("request\n got %s\nwant %s", got, want)
		}
		a = roundtrip(t, sock, 10000, "/big", `{}`)
		if a.RC != errOK || a.Status != 200 || len(a.Body) != 40<<10+30 {
			t.Errorf("chunked answer: rc %d status %d, %d bytes", a.RC, a.Status, len(a.Body))
		}
	})

	t.Run("kept connection", func(t *testing.T) {
		l, sock := listen(t)
		var conns, reqs atomic.Int32
		var closes []bool
		var mu sync.Mutex
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				reqs.Add(1)
				mu.Lock()
				closes = append(closes, r.Close)
				mu.Unlock()
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{}`)
			}),
			ConnState: func(_ net.Conn, st http.ConnState) {
				if st == http.StateNew {
					conns.Add(1)
				}
			},
		}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
		k := keepTrips(t, sock, 3, "/v1/login", `{"user":"pat"}`)
		if fmt.Sprint(k.RC) != "[200 200 200]" || k.Kept != 1 {
			t.Fatalf("trips %v kept %d", k.RC, k.Kept)
		}
		if n := conns.Load(); n != 1 {
			t.Errorf("%d connections for three requests, want 1", n)
		}
		mu.Lock()
		defer mu.Unlock()
		if fmt.Sprint(closes) != "[false false false]" {
			t.Errorf("requests asked to close the connection: %v", closes)
		}
	})

	t.Run("kept connection closed by the daemon", func(t *testing.T) {
		// The daemon answers and then closes the connection, saying nothing
		// (as when it closes an idle one): every request still gets through,
		// once, on a new connection.
		l, sock := listen(t)
		var conns, reqs atomic.Int32
		serveRaw(l, func(c net.Conn) {
			conns.Add(1)
			r, err := http.ReadRequest(bufio.NewReader(c))
			if err != nil {
				return
			}
			io.Copy(io.Discard, r.Body)
			reqs.Add(1)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
		})
		k := keepTrips(t, sock, 4, "/v1/login/abc/verify", `{"code":"123456"}`)
		if fmt.Sprint(k.RC) != "[200 200 200 200]" {
			t.Fatalf("trips %v", k.RC)
		}
		if r, c := reqs.Load(), conns.Load(); r != 4 || c != 4 {
			t.Errorf("%d requests over %d connections, want 4 over 4", r, c)
		}
	})

	t.Run("no socket", func(t *testing.T) {
		if a := roundtrip(t, filepath.Join(workDir, "none.sock"), 1000, "/v1/login", "{}"); a.RC != errConnect {
			t.Errorf("got %+v", a)
		}
	})

	t.Run("socket path too long", func(t *testing.T) {
		if a := roundtrip(t, "/"+strings.Repeat("x", 108), 1000, "/v1/login", "{}"); a.RC != errInval {
			t.Errorf("got %+v", a)
		}
	})

	t.Run("bad request path", func(t *testing.T) {
		l, sock := listen(t)
		serveRaw(l, func(c net.Conn) {})
		for _, p := range []string{"v1/login", "/v1/login HTTP/1.1\r\nX: y", "/v1/ login"} {
			if a := roundtrip(t, sock, 1000, p, "{}"); a.RC != errInval {
				t.Errorf("path %q: got %+v", p, a)
			}
		}
	})

	t.Run("hung daemon", func(t *testing.T) {
		l, sock := listen(t)
		serveRaw(l, func(c net.Conn) { io.Copy(io.Discard, c) })
		start := time.Now()
		if a := roundtrip(t, sock, 300, "/v1/login", "{}"); a.RC != errTimeout {
			t.Errorf("got %+v", a)
		}
		if el := time.Since(start); el < 300*time.Millisecond {
			t.Errorf("gave up after %v, before the deadline", el)
		}
	})

	t.Run("slow drip hits the deadline", func(t *testing.T) {
		// One byte at a time never resets the deadline.
		l, sock := listen(t)
		serveRaw(l, func(c net.Conn) {
			msg := "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("x", 100)
			for i := range msg {
				if _, err := c.Write([]byte{msg[i]}); err != nil {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
		if a := roundtrip(t, sock, 500, "/v1/login", "{}"); a.RC != errTimeout {
			t.Errorf("got %+v", a)
		}
	})

	t.Run("endless answer", func(t *testing.T) {
		l, sock := listen(t)
		serveRaw(l, func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\n")
			chunk := []byte(strings.Repeat("y", 4096))
			for {
				if _, err := c.Write(chunk); err != nil {
					return
				}
			}
		})
		if a := roundtrip(t, sock, 10000, "/v1/login", "{}"); a.RC != errTooBig {
			t.Errorf("got %+v", a)
		}
	})

	t.Run("hang-up without an answer", func(t *testing.T) {
		l, sock := listen(t)
		serveRaw(l, func(c net.Conn) {})
		if a := roundtrip(t, sock, 10000, "/v1/login", "{}"); a.RC != errIO {
			t.Errorf("got %+v", a)
		}
	})

	t.Run("hang-up mid-answer", func(t *testing.T) {
		l, sock := listen(t)
		serveRaw(l, func(c net.Conn) { io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}") })
		if a := roundtrip(t, sock, 10000, "/v1/login", "{}"); a.RC != errProto {
			t.Errorf("got %+v", a)
		}
	})

	t.Run("answer before the request is read", func(t *testing.T) {
		// A daemon may answer (e.g. request too large) and hang up
		// without reading; the answer still counts.
		l, sock := listen(t)
		serveRaw(l, func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 413 Too Large\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
		})
		a := roundtrip(t, sock, 10000, "/v1/login", strings.Repeat("z", 16<<10))
		if a.RC != errOK || a.Status != 413 {
			t.Errorf("got %+v", a)
		}
	})

	t.Run("body too large to send", func(t *testing.T) {
		if a := roundtrip(t, "/nonexistent", 1000, "/v1/login", strings.Repeat("z", 16<<10+1)); a.RC != errInval {
			t.Errorf("got %+v", a)
		}
	})
}

// TestNoLeaks runs the parsers' success and error paths, and round trips,
// in a fresh harness with LeakSanitizer, which reports at exit.
func TestNoLeaks(t *testing.T) {
	bin := makeTarget(t, "harness", "mfad_harness")
	l, sock := listen(t)
	serveRaw(l, func(c net.Conn) {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
	})
	const ok = "HTTP/1.1 200 OK\r\n"
	inputs := []struct {
		kind byte
		data string
	}{
		{'h', ok + "Content-Length: 2\r\n\r\n{}"},
		{'h', ok + "Transfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n"},
		{'h', ok + "Transfer-Encoding: chunked\r\n\r\n1\r\na"},
		{'h', ok + "Content-Length: 9\r\n\r\n{}"},
		{'h', ok + "\r\nbody"},
		{'h', "garbage"},
		{'l', `{"login_id":"a","decision":"challenge","methods":["totp"],"messages":["m"],"prompt":"p"}`},
		{'l', `{"decision":"challenge","login_id":"../x","methods":["totp"]}`},
		{'l', `{"decision":`},
		{'l', `[1,2,3]`},
		{'v', `{"result":"ok","remember_token":"t","messages":["a","b"],"message":"m","reason":"r"}`},
		{'v', `{"message":"m"}`},
		{'s', `{"sent_to":"x"}`},
		{'s', `{}`},
		{'e', `{"error":{"code":"c","message":"m"}}`},
		{'e', `{"error":{}}`},
		{'j', "abc\"\x01"},
		{'j', "\xff"},
		{'r', sock + "\x005000\x004294967295\x00/v1/login\x00{}"},
		{'r', filepath.Join(workDir, "none.sock") + "\x001000\x004294967295\x00/v1/login\x00{}"},
	}
	var in bytes.Buffer
	for _, i := range inputs {
		in.WriteByte(i.kind)
		binary.Write(&in, binary.BigEndian, uint32(len(i.data)))
		in.WriteString(i.data)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "ASAN_OPTIONS=detect_leaks=1")
	cmd.Stdin = &in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("harness: %v\n%s", err, stderr.String())
	}
	if n := bytes.Count(out, []byte("\n")); n != len(inputs) {
		t.Fatalf("%d answers for %d inputs:\n%s", n, len(inputs), out)
	}
}
