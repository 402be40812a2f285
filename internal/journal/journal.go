// Package journal is a zapcore.Core that writes entries to systemd's
// journal with their fields as journal fields: "integrity_kind" becomes
// INTEGRITY_KIND, a "message_id" field becomes MESSAGE_ID (so that
// journalctl MESSAGE_ID=... finds every alert of a kind), and the level
// becomes PRIORITY. Values are sent with the journal's native protocol,
// which keeps newlines and control characters inside their field: a file
// name cannot forge a log line; a MESSAGE has its Invisible characters
// escaped besides (the fields keep the exact bytes, for matching). When the journal cannot be reached, the
// entry goes to a fallback core (JSON on stderr) instead of being lost.
package journal

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/coreos/go-systemd/v22/journal"
	"go.uber.org/zap/buffer"
	"go.uber.org/zap/zapcore"
)

// SendFunc sends one entry; journal.Send in production.
type SendFunc func(message string, priority journal.Priority, vars map[string]string) error

// Core writes to the journal.
type Core struct {
	zapcore.LevelEnabler
	send       SendFunc
	identifier string
	fields     []zapcore.Field
	fallback   zapcore.Core
	failed     *sync.Once // reports the first failure once
}

// New returns a Core that sends with send (nil: journal.Send), tags entries
// with SYSLOG_IDENTIFIER=identifier, and writes to fallback when sending
// fails.
func New(enab zapcore.LevelEnabler, identifier string, send SendFunc, fallback zapcore.Core) *Core {
	if send == nil {
		send = journal.Send
	}
	return &Core{LevelEnabler: enab, send: send, identifier: identifier, fallback: fallback, failed: &sync.Once{}}
}

// With adds fields to every entry.
func (c *Core) With(fields []zapcore.Field) zapcore.Core {
	clone := *c
	clone.fields = append(append([]zapcore.Field(nil), c.fields...), fields...)
	clone.fallback = c.fallback.With(fields)
	return &clone
}

// Check adds the core when the level is enabled.
func (c *Core) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

// Write sends one entry.
func (c *Core) Write(e zapcore.Entry, fields []zapcore.Field) error {
	vars := Fields(e, append(append([]zapcore.Field(nil), c.fields...), fields...))
	vars["SYSLOG_IDENTIFIER"] = c.identifier
	if err := c.send(EscapeInvisible(e.Message), Priority(e.Level), vars); err != nil {
		c.failed.Do(func() {
			c.fallback.Write(zapcore.Entry{Level: zapcore.WarnLevel, Time: e.Time, Message: "journal unavailable; logging to stderr"},
				[]zapcore.Field{{Key: "error", Type: zapcore.StringType, String: err.Error()}})
		})
		return c.fallback.Write(e, fields)
	}
	return nil
}

// Sync has nothing to flush.
func (c *Core) Sync() error { return c.fallback.Sync() }

// Priority maps a zap level to a syslog priority.
func Priority(l zapcore.Level) journal.Priority {
	switch {
	case l <= zapcore.DebugLevel:
		return journal.PriDebug
	case l == zapcore.InfoLevel:
		return journal.PriInfo
	case l == zapcore.WarnLevel:
		return journal.PriWarning
	case l == zapcore.ErrorLevel:
		return journal.PriErr
	default:
		return journal.PriCrit
	}
}

// Fields converts an entry's fields to journal fields.
func Fields(e zapcore.Entry, fields []zapcore.Field) map[string]string {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	vars := make(map[string]string, len(enc.Fields)+2)
	for k, v := range enc.Fields {
		vars[FieldName(k)] = value(v)
	}
	if e.LoggerName != "" {
		vars["INTEGRITYD_LOGGER"] = e.LoggerName
	}
	if e.Caller.Defined {
		vars["CODE_FILE"] = e.Caller.File
		vars["CODE_LINE"] = fmt.Sprint(e.Caller.Line)
		vars["CODE_FUNC"] = e.Caller.Function
	}
	return vars
}

// FieldName makes a valid journal field name: upper case, [A-Z0-9_], not
// starting with "_" (reserved for trusted fields) or a digit, at most 64
// characters.
func FieldName(k string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(k) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	name := b.String()
	if name == "" || name[0] == '_' || (name[0] >= '0' && name[0] <= '9') {
		name = "F_" + strings.TrimLeft(name, "_")
	}
	if len(name) > 64 {
		name = name[:64]
	}
	return name
}

func value(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case fmt.Stringer:
		return v.String()
	case error:
		return v.Error()
	}
	if b, err := json.Marshal(v); err == nil {
		return string(b)
	}
	return fmt.Sprint(v)
}

// SafeEncoder wraps enc (zap's JSON or console encoder) so that no
// Invisible character reaches the output as it is: each is written as its
// JSON escape (EscapeInvisible). In JSON such a character can only be in
// a string, where the escape decodes back to it: nothing is lost. zap
// escapes the C0 controls itself, and U+2028, U+2029, but passes C1
// controls and bidi controls through, which a terminal or a log viewer
// then obeys (U+009B starts an escape sequence, U+202E shows the rest of
// the line reversed).
func SafeEncoder(enc zapcore.Encoder) zapcore.Encoder { return safeEncoder{enc} }

type safeEncoder struct{ zapcore.Encoder }

func (e safeEncoder) Clone() zapcore.Encoder { return safeEncoder{e.Encoder.Clone()} }

func (e safeEncoder) EncodeEntry(ent zapcore.Entry, fields []zapcore.Field) (*buffer.Buffer, error) {
	buf, err := e.Encoder.EncodeEntry(ent, fields)
	if err != nil {
		return buf, err
	}
	ascii := true
	for _, c := range buf.Bytes() {
		ascii = ascii && c < utf8.RuneSelf
	}
	if ascii {
		return buf, nil // the usual entry
	}
	if s := buf.String(); EscapeInvisible(s) != s {
		buf.Reset()
		buf.AppendString(EscapeInvisible(s))
	}
	return buf, nil
}
