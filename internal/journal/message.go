package journal

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/kind"
)

// One-line MESSAGEs. journalctl -o cat, systemctl status and syslog show
// only MESSAGE, so an alert's MESSAGE names what happened on its own line:
//
//	INVALID_HASH core lib/base.php
//	EXTRA_FILE core "lib/x y.php"
//	EXCEPTION notes: Signature data not found.
//	EXCEPTION core lib/private/x.php: File could not be read.
//	INVALID_HASH core lib/base.php, written by php-fpm8.2 (pid 4711, uid 33, php8.2-fpm.service)
//	resolved INVALID_HASH core lib/base.php
//
// A scope, a path, a writer's name and unit are written as they are when
// they hold only letters, digits and a few punctuation marks (Token), and
// quoted as Go quotes strings otherwise, with every control, bidi,
// format and invisible character escaped: whoever names a file cannot
// make its name look like more of the line (a second line, ", written by
// ..." of their choosing, text reordered by U+202E). What the daemon
// adds follows the path: the writer (WrittenBy, WriterUnknown), then the
// finding's message after ": ", last, since it can hold text from the
// install (a directive of a .htaccess).
//
// The fields (INTEGRITY_KIND, INTEGRITY_SCOPE, INTEGRITY_PATH, MESSAGE_ID,
// INTEGRITY_PID, ...) carry the same facts unquoted, for matching: they,
// not the MESSAGE, are what to trust.

// LineHasMessage reports whether the MESSAGE of an alert of kind k carries
// the finding's message (the kind table's InLine): an EXCEPTION's reason,
// an HTACCESS_DIRECTIVE's directives and lines, a VERSION_DOWNGRADE's
// releases.
func LineHasMessage(k string) bool { return kind.Kind(k).InLine() }

// AlertID is the MESSAGE_ID of an alert of kind k (INVALID_HASH, ...),
// from the kind table: IDException for a kind it does not have.
func AlertID(k string) string { return kind.Kind(k).MessageID() }

// FindingLine is the MESSAGE of a finding of kind in scope at path (""
// for the whole scope); message (an EXCEPTION's reason, "" for none)
// follows a colon.
func FindingLine(kind, scope, path, message string) string {
	return AlertLine(kind, scope, path, "", message)
}

// AlertLine is FindingLine with who (WrittenBy, WriterUnknown or "")
// after the path, before the message.
func AlertLine(kind, scope, path, who, message string) string {
	var b strings.Builder
	b.WriteString(Token(kind))
	for _, p := range []string{scope, path} {
		if p != "" {
			b.WriteByte(' ')
			b.WriteString(Token(p))
		}
	}
	b.WriteString(who)
	if message != "" {
		b.WriteString(": ")
		b.WriteString(EscapeInvisible(finding.EscapeControl(message)))
	}
	return b.String()
}

// ResolvedLine is the MESSAGE of a finding that healed.
func ResolvedLine(kind, scope, path string) string {
	return "resolved " + FindingLine(kind, scope, path, "")
}

// Token is s as a MESSAGE shows a name: as it is when it is not empty
// and holds only ASCII letters, digits and ._-/+@~=%#&!$^[]{} (never a
// space, a comma, a colon, a quote or a parenthesis, so that it cannot
// look like what follows it), else in double quotes, escaped as Go
// escapes a string (\n, \x1b, \xe9 for a byte that is not UTF-8) and
// with every character Invisible escaped too (\u202e).
func Token(s string) string { return token(s, "") }

// token is Token where the characters of also may be bare too.
func token(s, also string) string {
	bare := func(r rune) bool {
		return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' ||
			strings.ContainsRune("._-/+@~=%#&!$^[]{}", r) || strings.ContainsRune(also, r)
	}
	if s != "" && strings.IndexFunc(s, func(r rune) bool { return !bare(r) }) < 0 {
		return s
	}
	return Quote(s)
}

// Quote quotes s as strconv.Quote does, and also escapes what
// strconv.Quote prints but a reader cannot see or would misread
// (Invisible).
func Quote(s string) string {
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b = fmt.Appendf(b, `\x%02x`, s[i])
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case Invisible(r) || !unicode.IsPrint(r):
			q := strconv.QuoteRuneToASCII(r)
			b = append(b, q[1:len(q)-1]...)
		default:
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return string(append(b, '"'))
}

// Invisible reports whether r is a character that changes how the text
// around it is shown, or shows as nothing, and so can make a log line
// read otherwise than it is: the C1 controls (U+0080-U+009F; U+009B is a
// terminal's CSI), the bidi controls (U+061C, U+200E, U+200F,
// U+202A-U+202E, U+2066-U+2069), every other format character (Cf: zero
// width spaces and joiners, U+FEFF, the tags U+E0000-U+E007F, ...), the
// variation selectors, the other default-ignorable code points (U+034F,
// the Hangul fillers U+115F, U+1160, U+3164, U+FFA0, ...), the line and
// paragraph separators U+2028, U+2029 and the replacement character
// U+FFFD (which a byte that is not UTF-8 also shows as). C0 controls are
// escaped by finding.EscapeControl and Quote already.
func Invisible(r rune) bool {
	return 0x80 <= r && r <= 0x9f || r == 0x2028 || r == 0x2029 || r == utf8.RuneError ||
		unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Variation_Selector, r) ||
		unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r)
}

// EscapeInvisible replaces every Invisible character of s with its \u
// escape as JSON writes it (\u202e; a pair of surrogates beyond U+FFFF),
// leaving the rest as it is, bytes that are not UTF-8 too: for a MESSAGE
// that is not built of Tokens, and for JSON, where the escape decodes
// back to the character.
func EscapeInvisible(s string) string {
	var b []byte
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if n == 1 || !Invisible(r) {
			if b != nil {
				b = append(b, s[i:i+n]...)
			}
			i += n
			continue
		}
		if b == nil {
			b = append(make([]byte, 0, len(s)+12), s[:i]...)
		}
		if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
			b = fmt.Appendf(b, `\u%04x\u%04x`, r1, r2)
		} else {
			b = fmt.Appendf(b, `\u%04x`, r)
		}
		i += n
	}
	if b == nil {
		return s
	}
	return string(b)
}

// WritersUnknownHint ends the warning that who-data cannot name writers
// (MESSAGE_ID IDWritersUnknown): how to have them, or not to be told.
const WritersUnknownHint = "; alerts will say \"writer unknown\": give the daemon CAP_SYS_ADMIN with the who-data drop-in (packaging/systemd/drop-ins/who-data.conf, installed in /usr/local/share/integrityd/drop-ins/), or set who_data = off"

// WritersUnknownLine is the MESSAGE of that warning; why is the kernel's
// refusal (or why fanotify stopped).
func WritersUnknownLine(why string) string {
	return "writers unknown: " + EscapeInvisible(finding.EscapeControl(why)) + WritersUnknownHint
}

// WriterUnknown ends the MESSAGE of an alert whose writer the daemon
// tried to learn (who-data on) and could not: fanotify was refused, the
// change predates the daemon or the kernel dropped events.
const WriterUnknown = ", writer unknown"

// Who is the writer of a change as the sensor recorded it at the event:
// Exe is the program the kernel ran (what /proc/PID/exe named), Comm the
// name the process gave itself (prctl(PR_SET_NAME) sets it to anything),
// Execed that the process ran another program after the event (then
// neither says who wrote). "" and UID -1 are what is not known.
type Who struct {
	Pid    int
	Exe    string
	Comm   string
	UID    int
	Unit   string
	Execed bool
}

// WrittenBy names, in the MESSAGE of an alert, right after the path
// (AlertLine), the process that made the change:
//
//	INVALID_HASH core lib/base.php, written by php-fpm8.2 (pid 4711, uid 33, php8.2-fpm.service)
//
// The name is the program's (the base name of its executable), never the
// process's own claim: a comm that differs from it follows as
// `calling itself "NAME"`, and a process known only by its comm is "a
// process calling itself NAME". A process that ran another program since
// the event is "pid N, which then ran another program" (what it is now
// says nothing of who wrote). Exe, comm and unit are Tokens, quoted unless
// plain; uid < 0 and unit "" are left out.
func WrittenBy(w Who) string {
	var b strings.Builder
	b.WriteString(", written by ")
	name := w.Exe
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	name = strings.TrimSuffix(name, " (deleted)")
	claim := ""
	switch {
	case w.Execed:
		b.WriteString("pid ")
		b.WriteString(strconv.Itoa(w.Pid))
		b.WriteString(", which then ran another program (")
	case name != "":
		b.WriteString(Token(name))
		if w.Comm != "" && w.Comm != name && !(len(w.Comm) == 15 && strings.HasPrefix(name, w.Comm)) {
			claim = w.Comm // comm is at most 15 bytes of the name
		}
		b.WriteString(" (pid ")
		b.WriteString(strconv.Itoa(w.Pid))
	case w.Comm != "":
		b.WriteString("a process calling itself ")
		b.WriteString(Token(w.Comm))
		b.WriteString(" (pid ")
		b.WriteString(strconv.Itoa(w.Pid))
	default:
		b.WriteString("an exited process (pid ")
		b.WriteString(strconv.Itoa(w.Pid))
	}
	if w.UID >= 0 && !w.Execed {
		b.WriteString(", uid ")
		b.WriteString(strconv.Itoa(w.UID))
	}
	if w.Unit != "" {
		if !w.Execed {
			b.WriteString(", ")
		}
		b.WriteString(token(w.Unit, ":"))
	}
	if w.Execed && w.Unit == "" {
		b.WriteString("unknown")
	}
	b.WriteByte(')')
	if claim != "" {
		b.WriteString(" calling itself ")
		b.WriteString(strconv.Quote(claim))
	}
	return b.String()
}
