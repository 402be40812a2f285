package journal

import (
	"strconv"
	"strings"
)

// One-line MESSAGEs. journalctl -o cat, systemctl status and syslog show
// only MESSAGE, so an alert's MESSAGE names what happened on its own line:
//
//	INVALID_HASH core lib/base.php
//	EXCEPTION notes: Signature data not found.
//	EXCEPTION core lib/private/x.php: File could not be read.
//	resolved INVALID_HASH core lib/base.php
//
// The fields (INTEGRITY_KIND, INTEGRITY_SCOPE, INTEGRITY_PATH, MESSAGE_ID,
// ...) carry the same facts unquoted, for matching.

// FindingLine is the MESSAGE of a finding of kind in scope at path (""
// for the whole scope); message (an EXCEPTION's reason, "" for none)
// follows a colon. Each part is quoted as the text report quotes file
// names, so that a name with a newline cannot forge a line.
func FindingLine(kind, scope, path, message string) string {
	var b strings.Builder
	b.WriteString(Quote(kind))
	for _, p := range []string{scope, path} {
		if p != "" {
			b.WriteByte(' ')
			b.WriteString(Quote(p))
		}
	}
	if message != "" {
		b.WriteString(": ")
		b.WriteString(Quote(message))
	}
	return b.String()
}

// ResolvedLine is the MESSAGE of a finding that healed.
func ResolvedLine(kind, scope, path string) string {
	return "resolved " + FindingLine(kind, scope, path, "")
}

// Quote escapes control characters (newlines, escape sequences) and
// invalid UTF-8 in s, as Go string literals do, and returns s unchanged
// when it has none.
//
// TODO(integrator): this is a copy of verify.escapeControl
// (internal/verify/report.go); use verify.EscapeControl once it is
// exported and delete this copy.
func Quote(s string) string {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '\uFFFD' {
			q := strconv.Quote(s)
			return q[1 : len(q)-1]
		}
	}
	return s
}
