package modem

import (
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
)

// tracer writes a redacted transcript of the port to an io.Writer: one
// line per line read ("r: ") or write ("w: "). PINs, phone numbers, PDUs and
// message bodies never reach it. It is safe for concurrent use.
type tracer struct {
	mu sync.Mutex
	w  io.Writer
	// inSend is set from a +CMGS command until its final result: every line
	// read meanwhile that is not a prompt, a +CMGS answer or a result is an
	// echo of the message body and is redacted.
	inSend bool
}

var (
	quotedNumberRE = regexp.MustCompile(`"\+?[0-9*#]{3,}"`)
	longHexRE      = regexp.MustCompile(`\b[0-9A-Fa-f]{16,}\b`)
)

// redactLine replaces what a log must not hold in one line of AT traffic.
func redactLine(line string) string {
	up := strings.ToUpper(line)
	switch {
	case strings.Contains(line, "\x1a"):
		return fmt.Sprintf("<message body, %d bytes>", len(line))
	case strings.HasPrefix(up, "AT+CPIN=") || strings.HasPrefix(up, "AT+CPWD") || strings.HasPrefix(up, "AT+CLCK="):
		return line[:strings.IndexByte(line, '=')+1] + "<redacted>"
	case strings.HasPrefix(up, "AT+CMGS=\""):
		return "AT+CMGS=<redacted>"
	}
	line = quotedNumberRE.ReplaceAllString(line, `"<number>"`)
	line = longHexRE.ReplaceAllStringFunc(line, func(h string) string {
		return fmt.Sprintf("<hex, %d bytes>", len(h)/2)
	})
	return clip(line, 200)
}

// stop drops all further lines.
func (t *tracer) stop() {
	t.mu.Lock()
	t.w = nil
	t.mu.Unlock()
}

func (t *tracer) write(p []byte) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.w == nil {
		return
	}
	s := string(p)
	if strings.HasSuffix(s, "\x1a") {
		fmt.Fprintf(t.w, "w: <message body, %d bytes>\n", len(s)-1)
		return
	}
	for _, l := range strings.FieldsFunc(s, func(r rune) bool { return r == '\r' || r == '\n' }) {
		if strings.HasPrefix(strings.ToUpper(l), "AT+CMGS") {
			t.inSend = true
		}
		if l == "\x1b" {
			l = "<esc>"
		}
		fmt.Fprintf(t.w, "w: %s\n", redactLine(l))
	}
}

func (t *tracer) read(line string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.w == nil {
		return
	}
	if t.inSend {
		switch {
		case line == "OK" || strings.HasPrefix(line, "ERROR") || strings.HasPrefix(line, "+CMS ERROR") || strings.HasPrefix(line, "+CME ERROR"):
			t.inSend = false
		case line == "> " || strings.HasPrefix(line, "+CMGS:") || strings.HasPrefix(strings.ToUpper(line), "AT+CMGS"):
		case looksLikeURC(line, ""):
		default:
			line = fmt.Sprintf("<message body echo, %d bytes>", len(line))
		}
	}
	fmt.Fprintf(t.w, "r: %s\n", redactLine(line))
}
