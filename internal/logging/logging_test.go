package logging

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/coreos/go-systemd/v22/journal"
)

type entry struct {
	msg  string
	pri  journal.Priority
	vars map[string]string
}

type recorder struct {
	mu      sync.Mutex
	entries []entry
}

func (r *recorder) send(msg string, p journal.Priority, vars map[string]string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.entries = append(r.entries, entry{msg, p, vars})
	return nil
}

func TestJournalHandlerFields(t *testing.T) {
	rec := &recorder{}
	lv := new(slog.LevelVar)
	log := slog.New(NewJournalHandler(lv, rec.send)).With("component", "service")
	log.Debug("hidden")
	log.Info("audit", "user", "alice", "action", "verify", "result", "fail", "message", "x", "caller_uid", 0)
	log.WithGroup("req").Warn("request refused", "status", 403, slog.Group("peer", "uid", 1000))
	log.Error("store failed", "err", errors.New("disk full"))
	if len(rec.entries) != 3 {
		t.Fatalf("entries = %d, want 3 (debug filtered)", len(rec.entries))
	}
	e := rec.entries[0]
	want := map[string]string{"SYSLOG_IDENTIFIER": "mfad", "COMPONENT": "service", "USER": "alice", "ACTION": "verify",
		"RESULT": "fail", "MFAD_MESSAGE": "x", "CALLER_UID": "0"}
	for k, v := range want {
		if e.vars[k] != v {
			t.Errorf("%s = %q, want %q (all: %v)", k, e.vars[k], v, e.vars)
		}
	}
	if e.pri != journal.PriInfo || !strings.HasPrefix(e.msg, "msg=audit ") || strings.Contains(e.msg, "time=") || strings.Contains(e.msg, "level=") {
		t.Errorf("entry = %+v", e)
	}
	if w := rec.entries[1]; w.pri != journal.PriWarning || w.vars["REQ_STATUS"] != "403" || w.vars["REQ_PEER_UID"] != "1000" {
		t.Errorf("grouped entry = %+v", w)
	}
	if e := rec.entries[2]; e.pri != journal.PriErr || e.vars["ERR"] != "disk full" {
		t.Errorf("error entry = %+v", e)
	}
	lv.Set(slog.LevelDebug)
	log.Debug("now shown")
	if len(rec.entries) != 4 || rec.entries[3].pri != journal.PriDebug {
		t.Fatalf("debug after lowering the level: %+v", rec.entries)
	}
}

func TestFieldName(t *testing.T) {
	for in, want := range map[string]string{
		"user": "USER", "caller_uid": "CALLER_UID", "a.b-c": "A_B_C", "_x": "X", "9lives": "MFAD_9LIVES",
		"priority": "MFAD_PRIORITY", "": "MFAD_", strings.Repeat("k", 80): strings.Repeat("K", 64),
	} {
		if got := FieldName(in); got != want {
			t.Errorf("FieldName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestChooseOutsideSystemd(t *testing.T) {
	t.Setenv("JOURNAL_STREAM", "")
	if f := Choose("json"); f != JSON {
		t.Fatalf("Choose(json) = %s", f)
	}
	if f := Choose("text"); f != Text {
		t.Fatalf("Choose(text) = %s", f)
	}
	var b bytes.Buffer
	slog.New(New(JSON, &b, slog.LevelInfo)).Info("hi", "k", "v")
	if !strings.Contains(b.String(), `"k":"v"`) {
		t.Fatalf("json output %q", b.String())
	}
}
