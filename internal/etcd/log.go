package etcd

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// serveFailedMsg is what etcd logs, at error level, for every listener that
// stops serving, including when etcd is being closed on purpose: its
// error handler logs before it looks whether etcd is stopping.
const serveFailedMsg = "setting up serving from embedded etcd failed."

// newZapLogger returns a zap logger, as etcd requires, that writes through
// skiff's slog logger, so etcd's messages share skiff's format and
// destination instead of printing their own JSON to stderr. Only entries at
// min or above pass: etcd is chatty at info level. While stopping is set,
// the listener errors that a deliberate stop causes are demoted to debug.
func newZapLogger(lg *slog.Logger, min zapcore.Level, stopping *atomic.Bool) *zap.Logger {
	return zap.New(&slogCore{lg: lg, min: min, stopping: stopping})
}

// slogCore is a zapcore.Core that forwards entries to a slog.Logger.
type slogCore struct {
	lg       *slog.Logger
	min      zapcore.Level
	stopping *atomic.Bool
}

func (c *slogCore) Enabled(l zapcore.Level) bool {
	// Warnings reach Check, which keeps the ones always shown.
	return (l >= c.min || l == zapcore.WarnLevel) && c.lg.Enabled(context.Background(), slogLevel(l))
}

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	return &slogCore{lg: slog.New(c.lg.Handler().WithAttrs(attrs(fields))), min: c.min, stopping: c.stopping}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	e.Level = c.level(e)
	if (e.Level >= c.min || alwaysShown(e)) && c.lg.Enabled(context.Background(), slogLevel(e.Level)) {
		return ce.AddCore(e, c)
	}
	return ce
}

// alwaysShown is true for etcd's warning about a connection it refused in
// the TLS handshake (no certificate, or one of another CA): whoever knocks
// on etcd's ports with the wrong credentials should be seen in the log, by
// address. A connection closed before the handshake is logged at debug.
func alwaysShown(e zapcore.Entry) bool {
	return e.Level == zapcore.WarnLevel && strings.HasPrefix(e.Message, "rejected connection on ")
}

// storageVersionMsg is logged at error level by a member that has just
// joined, before its first snapshot carries the raft term; etcd retries
// and it resolves itself.
const storageVersionMsg = "failed to update storage version"

func (c *slogCore) level(e zapcore.Entry) zapcore.Level {
	if e.Message == serveFailedMsg && e.Level < zapcore.DPanicLevel && c.stopping.Load() {
		return zapcore.DebugLevel
	}
	if e.Message == storageVersionMsg && e.Level < zapcore.DPanicLevel {
		return zapcore.DebugLevel
	}
	return e.Level
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	as := attrs(fields)
	if e.LoggerName != "" {
		as = append(as, slog.String("logger", e.LoggerName))
	}
	c.lg.LogAttrs(context.Background(), slogLevel(e.Level), e.Message, as...)
	return nil
}

func (c *slogCore) Sync() error { return nil }

func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return slog.LevelDebug
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	}
	return slog.LevelError
}

// attrs turns zap fields into slog attributes. zap's map encoder does the
// type-specific work (errors, durations, stringers, nested objects).
func attrs(fields []zapcore.Field) []slog.Attr {
	if len(fields) == 0 {
		return nil
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	out := make([]slog.Attr, 0, len(enc.Fields))
	// Map order is random; sort so the same message always reads the same.
	for _, k := range slices.Sorted(maps.Keys(enc.Fields)) {
		out = append(out, slog.Any(k, enc.Fields[k]))
	}
	return out
}
