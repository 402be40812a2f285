package journal

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

type sent struct {
	msg  string
	pri  journal.Priority
	vars map[string]string
}

func TestFields(t *testing.T) {
	var got []sent
	send := func(m string, p journal.Priority, v map[string]string) error {
		got = append(got, sent{m, p, v})
		return nil
	}
	fb, _ := observer.New(zapcore.DebugLevel)
	log := zap.New(New(zapcore.InfoLevel, "integrityd", send, fb)).Named("daemon").With(zap.String("root", "/srv/nc"))
	log.Warn("integrity check failed",
		zap.String("message_id", "0f1b8b2b4f0b4c4a9a6f3f6c2f0b8a11"),
		zap.String("integrity_kind", "INVALID_HASH"),
		zap.String("integrity_path", "index.php\nFAKE_LINE=1"),
		zap.Int("files", 3), zap.Duration("duration", 1500*time.Millisecond),
		zap.Error(errors.New("boom")), zap.String("weird-key.x", "v"), zap.String("_TRUSTED", "no"), zap.String("9lives", "cat"))
	log.Debug("not enabled")
	log.Error("e")
	log.Info("i")
	if len(got) != 3 {
		t.Fatalf("sent %d entries, want 3", len(got))
	}
	want := map[string]string{
		"MESSAGE_ID":        "0f1b8b2b4f0b4c4a9a6f3f6c2f0b8a11",
		"INTEGRITY_KIND":    "INVALID_HASH",
		"INTEGRITY_PATH":    "index.php\nFAKE_LINE=1", // the newline stays inside the field
		"FILES":             "3",
		"DURATION":          "1.5s",
		"ERROR":             "boom",
		"WEIRD_KEY_X":       "v",
		"F_TRUSTED":         "no",
		"F_9LIVES":          "cat",
		"ROOT":              "/srv/nc",
		"SYSLOG_IDENTIFIER": "integrityd",
		"INTEGRITYD_LOGGER": "daemon",
	}
	e := got[0]
	if e.msg != "integrity check failed" || e.pri != journal.PriWarning {
		t.Errorf("message %q priority %d", e.msg, e.pri)
	}
	for k, v := range want {
		if e.vars[k] != v {
			t.Errorf("%s = %q, want %q", k, e.vars[k], v)
		}
	}
	if _, ok := e.vars["FAKE_LINE"]; ok {
		t.Error("a value forged a field")
	}
	for k := range e.vars {
		if strings.Trim(k, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != "" || k[0] == '_' {
			t.Errorf("invalid journal field name %q", k)
		}
	}
	if got[1].pri != journal.PriErr || got[2].pri != journal.PriInfo {
		t.Errorf("priorities %d %d", got[1].pri, got[2].pri)
	}
}

func TestFallback(t *testing.T) {
	send := func(string, journal.Priority, map[string]string) error { return errors.New("no journal socket") }
	fb, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(New(zapcore.InfoLevel, "integrityd", send, fb))
	log.Warn("integrity check failed", zap.String("integrity_path", "a"))
	log.Warn("integrity check failed", zap.String("integrity_path", "b"))
	msgs := []string{}
	for _, e := range logs.All() {
		msgs = append(msgs, e.Message)
	}
	if strings.Join(msgs, "|") != "journal unavailable; logging to stderr|integrity check failed|integrity check failed" {
		t.Errorf("fallback got %q", msgs)
	}
}

func TestFieldName(t *testing.T) {
	for in, want := range map[string]string{
		"integrity_kind": "INTEGRITY_KIND", "a.b-c": "A_B_C", "_x": "F_X", "1a": "F_1A", "": "F_",
		strings.Repeat("a", 80): strings.Repeat("A", 64),
	} {
		if got := FieldName(in); got != want {
			t.Errorf("FieldName(%q) = %q, want %q", in, got, want)
		}
	}
}

// A MESSAGE sent to the journal has its invisible characters escaped,
// whatever built it; the fields keep the exact name.
func TestMessageEscapesInvisible(t *testing.T) {
	var got []sent
	send := func(m string, p journal.Priority, v map[string]string) error {
		got = append(got, sent{m, p, v})
		return nil
	}
	fb, _ := observer.New(zapcore.DebugLevel)
	log := zap.New(New(zapcore.InfoLevel, "integrityd", send, fb))
	name := "x\u202egnp.php\u009b"
	log.Warn("cannot read "+name, zap.String("integrity_path", name))
	if len(got) != 1 {
		t.Fatalf("sent %d entries", len(got))
	}
	if want := `cannot read x\u202egnp.php\u009b`; got[0].msg != want {
		t.Errorf("MESSAGE %q, want %q", got[0].msg, want)
	}
	if got[0].vars["INTEGRITY_PATH"] != name {
		t.Errorf("INTEGRITY_PATH %q, want %q", got[0].vars["INTEGRITY_PATH"], name)
	}
}

// JSON and console lines carry no bidi or C1 control as it is; JSON
// decodes back to the exact strings.
func TestSafeEncoder(t *testing.T) {
	name := "shell\u202egnp.php\u009b2K\u2066\U000e0041\ufffd"
	cfg := zap.NewProductionEncoderConfig()
	for _, tt := range []struct {
		name string
		enc  zapcore.Encoder
	}{
		{"json", zapcore.NewJSONEncoder(cfg)},
		{"console", zapcore.NewConsoleEncoder(cfg)},
	} {
		var buf strings.Builder
		log := zap.New(zapcore.NewCore(SafeEncoder(tt.enc), zapcore.AddSync(&buf), zapcore.InfoLevel)).With(zap.String("root", name))
		log.Warn("EXTRA_FILE core "+name, zap.String("integrity_path", name))
		out := buf.String()
		if i := strings.IndexFunc(out, Invisible); i >= 0 {
			t.Errorf("%s: %q has an invisible character at %d", tt.name, out, i)
		}
		if tt.name != "json" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("%s: %v", out, err)
		}
		if m["msg"] != "EXTRA_FILE core "+name || m["integrity_path"] != name || m["root"] != name {
			t.Errorf("decoded %v", m)
		}
	}
}
