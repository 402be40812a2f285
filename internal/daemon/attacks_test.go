package daemon

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/integrityd/integrityd/internal/demo"
)

// demoTree builds the signed demo install for a test.
func demoTree(t testing.TB) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "nc")
	if err := demo.Build(t.Context(), root); err != nil {
		t.Fatal(err)
	}
	return root
}

// alertsWith counts the alerts for scope:path whose current hash is cur.
func (r *running) alertsWith(key, cur string) int {
	n := 0
	for _, e := range r.logs.FilterMessage("integrity check failed").All() {
		m := e.ContextMap()
		if m["integrity_scope"].(string)+":"+m["integrity_path"].(string) == key && m["integrity_current"] == cur {
			n++
		}
	}
	return n
}

// TestAttackSecondPayload: a file already INVALID_HASH (or EXTRA_FILE)
// whose content changes again, the real payload after a decoy, is alerted
// again with the new hash; the same content written again is not.
func TestAttackSecondPayload(t *testing.T) {
	root := demoTree(t)
	r := start(t, testConfig(root, t.TempDir()))
	for _, tt := range []struct{ path, key string }{
		{"index.php", "core:index.php"},         // signed: INVALID_HASH
		{"lib/shell.php", "core:lib/shell.php"}, // extra: EXTRA_FILE
	} {
		p := filepath.Join(root, tt.path)
		for i, content := range []string{"<?php // decoy\n", "<?php system($_GET['c']);\n", "<?php system($_GET['c']);\n"} {
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			r.waitIdle(t)
			// One alert per distinct content: the third write repeats
			// the second and must not add one.
			if n := r.alertsWith(tt.key, hashOf(content).String()); n != 1 {
				t.Fatalf("%s, write %d: %d alerts with the current hash of %q, want 1", tt.path, i, n, content)
			}
		}
		if n := alerts(r.logs, "integrity check failed")[tt.key]; n != 2 {
			t.Errorf("%s: %d alerts for two distinct contents, want 2", tt.path, n)
		}
	}
	assertSame(t, r, root, "after the payloads")
}
