package journal

import (
	"strconv"
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

// LineHasMessage reports whether the MESSAGE of an alert of kind carries
// the finding's message: an EXCEPTION's reason, an HTACCESS_DIRECTIVE's
// directives and lines, a VERSION_DOWNGRADE's releases.
func LineHasMessage(kind string) bool {
	switch verify.Kind(kind) {
	case verify.KindException, verify.HtaccessDirective, verify.VersionDowngrade:
		return true
	}
	return false
}

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

// WriterUnknown ends the MESSAGE of an alert whose writer the daemon
// tried to learn (who-data on) and could not: fanotify was refused, the
// change predates the daemon or the kernel dropped events.
const WriterUnknown = ", writer unknown"

// WrittenBy ends the MESSAGE of an alert with the process that made the
// change, as /proc described it:
//
//	INVALID_HASH core lib/base.php, written by php-fpm8.2 (pid 4711, uid 33, php8.2-fpm.service)
//
// comm "" (the process was gone) reads "an exited process"; uid < 0 and
// unit "" are left out. A process names itself (comm is what it set with
// prctl), so every part is quoted as FindingLine quotes a path.
func WrittenBy(comm string, pid, uid int, unit string) string {
	var b strings.Builder
	b.WriteString(", written by ")
	if comm == "" {
		b.WriteString("an exited process")
	} else {
		b.WriteString(verify.EscapeControl(comm))
	}
	b.WriteString(" (pid ")
	b.WriteString(strconv.Itoa(pid))
	if uid >= 0 {
		b.WriteString(", uid ")
		b.WriteString(strconv.Itoa(uid))
	}
	if unit != "" {
		b.WriteString(", ")
		b.WriteString(verify.EscapeControl(unit))
	}
	b.WriteByte(')')
	return b.String()
}
