package journal

import (
	"strings"
	"testing"

	"github.com/integrityd/integrityd/internal/verify"
)

func TestFindingLine(t *testing.T) {
	for _, tt := range []struct {
		kind                   verify.Kind
		scope, path, msg, want string
	}{
		{verify.InvalidHash, "core", "lib/base.php", "", "INVALID_HASH core lib/base.php"},
		{verify.ExtraFile, "notes", "lib/x y.php", "", "EXTRA_FILE notes lib/x y.php"},
		{verify.KindException, "notes", "", "Signature data not found.", "EXCEPTION notes: Signature data not found."},
		{verify.KindException, "core", "lib/a.php", "File could not be read.", "EXCEPTION core lib/a.php: File could not be read."},
		// A name cannot forge a second line, an escape sequence or an
		// invalid byte.
		{verify.ExtraFile, "core", "a.php\nINVALID_HASH core index.php", "", `EXTRA_FILE core a.php\nINVALID_HASH core index.php`},
		{verify.ExtraFile, "core", "\x1b[2Ka\rb", "", `EXTRA_FILE core \x1b[2Ka\rb`},
		{verify.ExtraFile, "core", "caf\xe9.php", "", `EXTRA_FILE core caf\xe9.php`},
		{verify.KindException, "core\n", "", "bad\nline", `EXCEPTION core\n: bad\nline`},
	} {
		got := FindingLine(string(tt.kind), tt.scope, tt.path, tt.msg)
		if got != tt.want {
			t.Errorf("FindingLine(%q, %q, %q, %q) = %q, want %q", tt.kind, tt.scope, tt.path, tt.msg, got, tt.want)
		}
		if strings.ContainsAny(got, "\n\r\x1b") {
			t.Errorf("%q has a control character", got)
		}
	}
	if got := ResolvedLine(string(verify.InvalidHash), "core", "lib/base.php"); got != "resolved INVALID_HASH core lib/base.php" {
		t.Errorf("ResolvedLine = %q", got)
	}
}

func TestWrittenBy(t *testing.T) {
	line := FindingLine(string(verify.InvalidHash), "core", "lib/base.php", "")
	for _, tt := range []struct {
		comm     string
		pid, uid int
		unit     string
		want     string
	}{
		{"php-fpm8.2", 4711, 33, "php8.2-fpm.service", "INVALID_HASH core lib/base.php, written by php-fpm8.2 (pid 4711, uid 33, php8.2-fpm.service)"},
		{"vim", 99, 0, "", "INVALID_HASH core lib/base.php, written by vim (pid 99, uid 0)"},
		{"", 12, -1, "", "INVALID_HASH core lib/base.php, written by an exited process (pid 12)"},
		{"sh", 7, 1000, "docker:4f9e1a0b2c3d", "INVALID_HASH core lib/base.php, written by sh (pid 7, uid 1000, docker:4f9e1a0b2c3d)"},
		// A process names itself: it cannot forge a line.
		{"x\nINVALID_HASH core index.php", 5, 33, "a\x1b[2K.service", `INVALID_HASH core lib/base.php, written by x\nINVALID_HASH core index.php (pid 5, uid 33, a\x1b[2K.service)`},
	} {
		got := line + WrittenBy(tt.comm, tt.pid, tt.uid, tt.unit)
		if got != tt.want {
			t.Errorf("WrittenBy(%q, %d, %d, %q) = %q, want %q", tt.comm, tt.pid, tt.uid, tt.unit, got, tt.want)
		}
		if strings.ContainsAny(got, "\n\r\x1b") {
			t.Errorf("%q has a control character", got)
		}
	}
	if got := line + WriterUnknown; got != "INVALID_HASH core lib/base.php, writer unknown" {
		t.Errorf("with WriterUnknown: %q", got)
	}
}

func TestAlertID(t *testing.T) {
	for kind, want := range map[verify.Kind]string{
		verify.InvalidHash: IDInvalidHash, verify.FileMissing: IDFileMissing, verify.ExtraFile: IDExtraFile,
		verify.HardLink: IDHardLink, verify.DuplicateApp: IDDuplicate, verify.KindException: IDException,
	} {
		if got := AlertID(string(kind)); got != want {
			t.Errorf("AlertID(%s) = %s, want %s", kind, got, want)
		}
	}
}
