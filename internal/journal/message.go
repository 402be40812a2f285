package journal

import (
	"strings"

	"github.com/integrityd/integrityd/internal/verify"
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
	b.WriteString(verify.EscapeControl(kind))
	for _, p := range []string{scope, path} {
		if p != "" {
			b.WriteByte(' ')
			b.WriteString(verify.EscapeControl(p))
		}
	}
	if message != "" {
		b.WriteString(": ")
		b.WriteString(verify.EscapeControl(message))
	}
	return b.String()
}

// ResolvedLine is the MESSAGE of a finding that healed.
func ResolvedLine(kind, scope, path string) string {
	return "resolved " + FindingLine(kind, scope, path, "")
}
