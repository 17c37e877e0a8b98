// Package logging builds the daemon's slog handler: structured entries in
// the systemd journal when stderr is connected to it (JOURNAL_STREAM), text
// or JSON lines on stderr otherwise.
//
// In the journal every attribute becomes a field of its own (upper-cased,
// groups joined with "_": user=alice becomes USER=alice), so operators can
// filter with `journalctl -u mfad ACTION=verify RESULT=fail`; MESSAGE holds
// the message and the attributes as text for reading, PRIORITY the level,
// SYSLOG_IDENTIFIER "mfad". Attributes whose names the journal reserves
// (MESSAGE, PRIORITY, CODE_FILE, ...) get an "MFAD_" prefix. The package
// never adds data of its own: what is logged is what callers pass, and
// callers never pass a secret or a code.
package logging

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/coreos/go-systemd/v22/journal"
)

// Format selects the output.
type Format string

// Formats.
const (
	Text    Format = "text"
	JSON    Format = "json"
	Journal Format = "journal"
)

// Choose returns Journal when stderr is the systemd journal's stream and
// the journal socket is there, else the configured format.
func Choose(configured string) Format {
	if ok, err := journal.StderrIsJournalStream(); err == nil && ok && journal.Enabled() {
		return Journal
	}
	if configured == string(JSON) {
		return JSON
	}
	return Text
}

// New returns a handler writing f to w (w is unused for Journal).
func New(f Format, w io.Writer, level slog.Leveler) slog.Handler {
	opts := &slog.HandlerOptions{Level: level}
	switch f {
	case Journal:
		return NewJournalHandler(level, journal.Send)
	case JSON:
		return slog.NewJSONHandler(w, opts)
	default:
		return slog.NewTextHandler(w, opts)
	}
}

// SendFunc sends one journal entry (journal.Send in production).
type SendFunc func(message string, priority journal.Priority, vars map[string]string) error

// JournalHandler writes entries to the systemd journal with structured
// fields. It is safe for concurrent use.
type JournalHandler struct {
	level  slog.Leveler
	send   SendFunc
	attrs  []slog.Attr // pre-bound with WithAttrs, already prefixed
	groups []string
	mu     *sync.Mutex // guards the shared text formatter buffer
	buf    *bytes.Buffer
	text   slog.Handler // formats MESSAGE (without time and level)
}

// NewJournalHandler returns a handler that sends through send.
func NewJournalHandler(level slog.Leveler, send SendFunc) *JournalHandler {
	buf := &bytes.Buffer{}
	return &JournalHandler{level: level, send: send, mu: &sync.Mutex{}, buf: buf,
		text: slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug - 100, ReplaceAttr: dropTimeLevel})}
}

func dropTimeLevel(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
		return slog.Attr{}
	}
	return a
}

// Enabled implements slog.Handler.
func (h *JournalHandler) Enabled(_ context.Context, l slog.Level) bool {
	min := slog.LevelInfo
	if h.level != nil {
		min = h.level.Level()
	}
	return l >= min
}

// WithAttrs implements slog.Handler.
func (h *JournalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), prefixed(h.groups, as)...)
	c.text = h.text.WithAttrs(as)
	return &c
}

// WithGroup implements slog.Handler.
func (h *JournalHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.groups = append(append([]string(nil), h.groups...), name)
	c.text = h.text.WithGroup(name)
	return &c
}

// prefixed qualifies attribute keys with the open groups.
func prefixed(groups []string, as []slog.Attr) []slog.Attr {
	if len(groups) == 0 {
		return as
	}
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = slog.Attr{Key: strings.Join(groups, ".") + "." + a.Key, Value: a.Value}
	}
	return out
}

// Handle implements slog.Handler.
func (h *JournalHandler) Handle(ctx context.Context, r slog.Record) error {
	vars := map[string]string{"SYSLOG_IDENTIFIER": "mfad"}
	var add func(a slog.Attr)
	add = func(a slog.Attr) {
		v := a.Value.Resolve()
		if v.Kind() == slog.KindGroup {
			for _, g := range v.Group() {
				add(slog.Attr{Key: a.Key + "." + g.Key, Value: g.Value})
			}
			return
		}
		if a.Key == "" {
			return
		}
		vars[FieldName(a.Key)] = v.String()
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(func(a slog.Attr) bool {
		for _, x := range prefixed(h.groups, []slog.Attr{a}) {
			add(x)
		}
		return true
	})
	h.mu.Lock()
	h.buf.Reset()
	err := h.text.Handle(ctx, r)
	msg := strings.TrimSuffix(h.buf.String(), "\n")
	h.mu.Unlock()
	if err != nil {
		msg = r.Message
	}
	return h.send(msg, priority(r.Level), vars)
}

func priority(l slog.Level) journal.Priority {
	switch {
	case l >= slog.LevelError:
		return journal.PriErr
	case l >= slog.LevelWarn:
		return journal.PriWarning
	case l >= slog.LevelInfo:
		return journal.PriInfo
	default:
		return journal.PriDebug
	}
}

// reserved are journal fields with a meaning of their own.
var reserved = map[string]bool{
	"MESSAGE": true, "MESSAGE_ID": true, "PRIORITY": true, "CODE_FILE": true, "CODE_LINE": true, "CODE_FUNC": true,
	"ERRNO": true, "INVOCATION_ID": true, "USER_INVOCATION_ID": true, "SYSLOG_FACILITY": true, "SYSLOG_IDENTIFIER": true,
	"SYSLOG_PID": true, "SYSLOG_TIMESTAMP": true, "SYSLOG_RAW": true, "DOCUMENTATION": true, "TID": true,
	"UNIT": true, "USER_UNIT": true,
}

// FieldName turns an attribute key into a journal field name: upper case
// letters, digits and '_', not starting with '_' or a digit, at most 64
// characters, reserved names prefixed with "MFAD_".
func FieldName(key string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(key) {
		if r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	name := strings.TrimLeft(b.String(), "_")
	if name == "" || name[0] >= '0' && name[0] <= '9' || reserved[name] {
		name = "MFAD_" + name
	}
	if len(name) > 64 {
		name = name[:64]
	}
	return name
}
