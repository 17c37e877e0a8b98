package store

import (
	"fmt"
	"log/slog"
	"strings"
)

// badgerLogger adapts badger.Logger to slog. Badger is chatty at info level,
// so only warnings and errors are passed on, as constant messages with
// Badger's text in the detail attribute.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(format string, args ...any) {
	b.l.Error("badger error", "detail", strings.TrimSpace(fmt.Sprintf(format, args...)))
}

func (b badgerLogger) Warningf(format string, args ...any) {
	b.l.Warn("badger warning", "detail", strings.TrimSpace(fmt.Sprintf(format, args...)))
}

func (badgerLogger) Infof(string, ...any)  {}
func (badgerLogger) Debugf(string, ...any) {}
