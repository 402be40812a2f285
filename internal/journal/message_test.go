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
