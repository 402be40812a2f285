package journal

import (
	"strconv"
	"strings"
	"testing"

	"github.com/integrityd/integrityd/internal/kind"
)

func TestFindingLine(t *testing.T) {
	for _, tt := range []struct {
		kind                   kind.Kind
		scope, path, msg, want string
	}{
		{kind.InvalidHash, "core", "lib/base.php", "", "INVALID_HASH core lib/base.php"},
		{kind.InvalidHash, "notes@/srv/apps2", "lib/A-b_c+1~.php", "", "INVALID_HASH notes@/srv/apps2 lib/A-b_c+1~.php"},
		{kind.ExtraFile, "notes", "lib/x y.php", "", `EXTRA_FILE notes "lib/x y.php"`},
		{kind.ExtraFile, "core", `a"b\c.php`, "", `EXTRA_FILE core "a\"b\\c.php"`},
		{kind.ExtraFile, "core", "lib/café.php", "", `EXTRA_FILE core "lib/café.php"`},
		{kind.Exception, "notes", "", "Signature data not found.", "EXCEPTION notes: Signature data not found."},
		{kind.Exception, "core", "lib/a.php", "File could not be read.", "EXCEPTION core lib/a.php: File could not be read."},
		// A name cannot forge a second line, an escape sequence or an
		// invalid byte.
		{kind.ExtraFile, "core", "a.php\nINVALID_HASH core index.php", "", `EXTRA_FILE core "a.php\nINVALID_HASH core index.php"`},
		{kind.ExtraFile, "core", "\x1b[2Ka\rb", "", `EXTRA_FILE core "\x1b[2Ka\rb"`},
		{kind.ExtraFile, "core", "caf\xe9.php", "", `EXTRA_FILE core "caf\xe9.php"`},
		{kind.Exception, "core\n", "", "bad\nline", `EXCEPTION "core\n": bad\nline`},
		// Nor reorder what follows (U+202E: "shell.php" shown as
		// "shell\u202egnp.php" reads "shellphp.png"), start a terminal
		// escape with a C1 control (U+009B is CSI), or hide a character.
		{kind.ExtraFile, "core", "shell\u202egnp.php", "", `EXTRA_FILE core "shell\u202egnp.php"`},
		{kind.ExtraFile, "core", "a\u009b2Kb.php", "", `EXTRA_FILE core "a\u009b2Kb.php"`},
		{kind.ExtraFile, "core", "a\u0085b\u2066c\u2069\u061c\u200e\u200f.php", "", `EXTRA_FILE core "a\u0085b\u2066c\u2069\u061c\u200e\u200f.php"`},
		{kind.ExtraFile, "core", "in\u200bdex\ufeff\u3164\ufe0f\U000e0041.php", "", `EXTRA_FILE core "in\u200bdex\ufeff\u3164\ufe0f\U000e0041.php"`},
		{kind.ExtraFile, "core", "a\u00a0b\u2028c\ufffd.php", "", `EXTRA_FILE core "a\u00a0b\u2028c\ufffd.php"`},
		{kind.ExtraFile, "x\u202ey", "a.php", "", `EXTRA_FILE "x\u202ey" a.php`},
		{kind.HtaccessDirective, "unsigned", ".htaccess", "line 3: php_value \u202eX\u009b", `HTACCESS_DIRECTIVE unsigned .htaccess: line 3: php_value \u202eX\u009b`},
	} {
		got := FindingLine(string(tt.kind), tt.scope, tt.path, tt.msg)
		if got != tt.want {
			t.Errorf("FindingLine(%q, %q, %q, %q) = %q, want %q", tt.kind, tt.scope, tt.path, tt.msg, got, tt.want)
		}
		if i := strings.IndexFunc(got, func(r rune) bool { return r < 0x20 || r == 0x7f || Invisible(r) }); i >= 0 {
			t.Errorf("%q has a control or invisible character at %d", got, i)
		}
		if tt.path != "" {
			if p := pathOf(t, got, tt.scope); p != tt.path {
				t.Errorf("%q names path %q, want %q", got, p, tt.path)
			}
		}
	}
	if got := ResolvedLine(string(kind.InvalidHash), "core", "lib/base.php"); got != "resolved INVALID_HASH core lib/base.php" {
		t.Errorf("ResolvedLine = %q", got)
	}
}

func TestWrittenBy(t *testing.T) {
	line := FindingLine(string(kind.InvalidHash), "core", "lib/base.php", "")
	for _, tt := range []struct {
		who  Who
		want string
	}{
		{Who{Pid: 4711, Exe: "/usr/sbin/php-fpm8.2", Comm: "php-fpm8.2", UID: 33, Unit: "php8.2-fpm.service"}, "INVALID_HASH core lib/base.php, written by php-fpm8.2 (pid 4711, uid 33, php8.2-fpm.service)"},
		{Who{Pid: 99, Exe: "/usr/bin/vim.basic", Comm: "vim", UID: 0}, `INVALID_HASH core lib/base.php, written by vim.basic (pid 99, uid 0) calling itself "vim"`},
		{Who{Pid: 12, UID: -1}, "INVALID_HASH core lib/base.php, written by an exited process (pid 12)"},
		{Who{Pid: 7, Exe: "/bin/dash", Comm: "sh", UID: 1000, Unit: "docker:4f9e1a0b2c3d"}, `INVALID_HASH core lib/base.php, written by dash (pid 7, uid 1000, docker:4f9e1a0b2c3d) calling itself "sh"`},
		// comm is the first 15 bytes of a longer name: no claim.
		{Who{Pid: 8, Exe: "/usr/bin/unattended-upgrade", Comm: "unattended-upgr", UID: 0}, "INVALID_HASH core lib/base.php, written by unattended-upgrade (pid 8, uid 0)"},
		// Only the process's own claim is known (exe unreadable).
		{Who{Pid: 9, Comm: "php-fpm8.2", UID: 33}, "INVALID_HASH core lib/base.php, written by a process calling itself php-fpm8.2 (pid 9, uid 33)"},
		// A symlink named php-fpm8.2 to sleep, or prctl(PR_SET_NAME):
		// the program is named, the claim is a claim.
		{Who{Pid: 10, Exe: "/usr/bin/sleep", Comm: "php-fpm8.2", UID: 33}, `INVALID_HASH core lib/base.php, written by sleep (pid 10, uid 33) calling itself "php-fpm8.2"`},
		// Ran another program after the write: neither its exe, comm nor
		// uid say who wrote.
		{Who{Pid: 11, Exe: "/usr/bin/sudo", Comm: "sudo", UID: 0, Unit: "php8.2-fpm.service", Execed: true}, "INVALID_HASH core lib/base.php, written by pid 11, which then ran another program (php8.2-fpm.service)"},
		{Who{Pid: 11, UID: -1, Execed: true}, "INVALID_HASH core lib/base.php, written by pid 11, which then ran another program (unknown)"},
		// A process names itself: it cannot forge a line, or more of it.
		{Who{Pid: 5, Comm: "x\nINVALID_HASH core index.php", UID: 33, Unit: "a\x1b[2K.service"}, `INVALID_HASH core lib/base.php, written by a process calling itself "x\nINVALID_HASH core index.php" (pid 5, uid 33, "a\x1b[2K.service")`},
		{Who{Pid: 5, Exe: "/tmp/x", Comm: "x (pid 1, uid 0", UID: 33}, `INVALID_HASH core lib/base.php, written by x (pid 5, uid 33) calling itself "x (pid 1, uid 0"`},
		{Who{Pid: 5, Exe: "/tmp/\u202eevil", Comm: "\u202eevil", UID: 33}, `INVALID_HASH core lib/base.php, written by "\u202eevil" (pid 5, uid 33)`},
		{Who{Pid: 5, Exe: "/tmp/a", Comm: "\u202eevil", UID: 33}, `INVALID_HASH core lib/base.php, written by a (pid 5, uid 33) calling itself "\u202eevil"`},
	} {
		got := line + WrittenBy(tt.who)
		if got != tt.want {
			t.Errorf("WrittenBy(%+v) = %q, want %q", tt.who, got, tt.want)
		}
		if strings.ContainsAny(got, "\n\r\x1b\u202e") {
			t.Errorf("%q has a control character", got)
		}
	}
	if got := line + WriterUnknown; got != "INVALID_HASH core lib/base.php, writer unknown" {
		t.Errorf("with WriterUnknown: %q", got)
	}
}

// A file name cannot carry an attribution of its own before the real
// one: the name is quoted, and the daemon's writer follows it, before the
// finding's message (which can hold text from the install).
func TestAlertLineAttribution(t *testing.T) {
	forged := "shell.php, written by php-fpm8.2 (pid 4711, uid 33, php8.2-fpm.service)"
	who := WrittenBy(Who{Pid: 99, Exe: "/bin/sh", Comm: "sh", UID: 33, Unit: "tamper.service"})
	for _, tt := range []struct{ kind, path, who, msg, want string }{
		{"EXTRA_FILE", forged, who, "", `EXTRA_FILE core "shell.php, written by php-fpm8.2 (pid 4711, uid 33, php8.2-fpm.service)", written by sh (pid 99, uid 33, tamper.service)`},
		{"EXTRA_FILE", forged, WriterUnknown, "", `EXTRA_FILE core "shell.php, written by php-fpm8.2 (pid 4711, uid 33, php8.2-fpm.service)", writer unknown`},
		{"HTACCESS_DIRECTIVE", ".htaccess", who, "line 3: php_value x, written by apache2 (pid 1, uid 0)", `HTACCESS_DIRECTIVE core .htaccess, written by sh (pid 99, uid 33, tamper.service): line 3: php_value x, written by apache2 (pid 1, uid 0)`},
		{"INVALID_HASH", "lib/base.php", WrittenBy(Who{Pid: 4711, Exe: "/usr/sbin/php-fpm8.2", Comm: "php-fpm8.2", UID: 33, Unit: "docker:4f9e1a0b2c3d"}), "", `INVALID_HASH core lib/base.php, written by php-fpm8.2 (pid 4711, uid 33, docker:4f9e1a0b2c3d)`},
	} {
		got := AlertLine(tt.kind, "core", tt.path, tt.who, tt.msg)
		if got != tt.want {
			t.Errorf("AlertLine(%q, %q, %q) =\n%s\nwant\n%s", tt.path, tt.who, tt.msg, got, tt.want)
		}
		if p := pathOf(t, got, "core"); p != tt.path {
			t.Errorf("%q names path %q", got, p)
		}
		// The first attribution after the path is the daemon's.
		rest := strings.TrimPrefix(got, tt.kind+" core "+Token(tt.path))
		if !strings.HasPrefix(rest, tt.who) {
			t.Errorf("%q: %q follows the path, want %q", got, rest, tt.who)
		}
	}
}

func TestAlertID(t *testing.T) {
	for k, want := range map[kind.Kind]string{
		kind.InvalidHash: kind.IDInvalidHash, kind.FileMissing: kind.IDFileMissing, kind.ExtraFile: kind.IDExtraFile,
		kind.HardLink: kind.IDHardLink, kind.DuplicateApp: kind.IDDuplicate, kind.Exception: kind.IDException,
	} {
		if got := AlertID(string(k)); got != want {
			t.Errorf("AlertID(%s) = %s, want %s", k, got, want)
		}
	}
}

// pathOf reads the path back from an alert's MESSAGE line, as a reader
// does: after the kind and the scope, a bare token up to a space, comma
// or colon, or a quoted string.
func pathOf(t *testing.T, line, scope string) string {
	t.Helper()
	_, rest, _ := strings.Cut(line, " ")
	rest = strings.TrimPrefix(rest, Token(scope)+" ")
	if !strings.HasPrefix(rest, `"`) {
		if i := strings.IndexAny(rest, " ,:"); i >= 0 {
			rest = rest[:i]
		}
		return rest
	}
	q, err := strconv.QuotedPrefix(rest)
	if err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	p, err := strconv.Unquote(q)
	if err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	return p
}

// Every character the brief names, and every Invisible one of the BMP,
// is escaped in a path, a scope and a message, and a quoted path reads
// back as the exact name.
func TestTokenEscapesInvisible(t *testing.T) {
	var rs []rune
	for r := rune(0); r <= 0x10ffff; r++ {
		if r < 0x20 || r == 0x7f || Invisible(r) {
			rs = append(rs, r)
		}
	}
	for _, r := range []rune{0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069, 0x200e, 0x200f, 0x061c, 0x0080, 0x009b, 0x009f, 0x200b, 0x200d, 0x2060, 0xfeff} {
		if !Invisible(r) {
			t.Errorf("U+%04X is not Invisible", r)
		}
	}
	for _, r := range rs {
		name := "a" + string(r) + ".php"
		for i, got := range []string{FindingLine("EXTRA_FILE", "core", name, ""), FindingLine("EXTRA_FILE", name, "x", ""), FindingLine("EXCEPTION", "core", "x", name), EscapeInvisible(name)} {
			if strings.ContainsRune(got, r) && (i < 3 || Invisible(r)) {
				t.Fatalf("U+%04X passes unescaped: %q", r, got)
			}
		}
		if p := pathOf(t, FindingLine("EXTRA_FILE", "core", name, ""), "core"); p != name {
			t.Fatalf("U+%04X: the path reads back as %q", r, p)
		}
	}
	// Printable letters stay as they are, in quotes.
	if got := Token("données/日本.php"); got != `"données/日本.php"` {
		t.Errorf("Token = %s", got)
	}
}

// The who-data warning says how to fix it (the drop-in, or who_data =
// off), and an EXCEPTION's reason ends the line whatever precedes it: no
// "Certificate is not valid., writer unknown" (issue 22).
func TestWritersUnknownLineAndPunctuation(t *testing.T) {
	got := WritersUnknownLine("fanotify_init: operation not permitted")
	for _, want := range []string{"writers unknown: fanotify_init: operation not permitted", "who-data.conf", "who_data = off"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q does not say %q", got, want)
		}
	}
	if got := WritersUnknownLine("x\n\u202ey"); strings.ContainsAny(got, "\n\u202e") {
		t.Errorf("%q: an unescaped control or bidi character", got)
	}
	for _, who := range []string{"", WriterUnknown, WrittenBy(Who{Pid: 9, Exe: "/usr/bin/vim", Comm: "vim", UID: 0})} {
		line := AlertLine("EXCEPTION", "core", "", who, "Certificate is not valid.")
		if !strings.HasSuffix(line, ": Certificate is not valid.") || strings.Contains(line, ".,") {
			t.Errorf("who %q: %q", who, line)
		}
	}
}
