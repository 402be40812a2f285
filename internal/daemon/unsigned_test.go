package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/integrityd/integrityd/internal/baseline"
	"github.com/integrityd/integrityd/internal/journal"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/state"
	"github.com/integrityd/integrityd/internal/verify"
)

// recordBaseline records the unsigned coverage of root now, as
// integrityd baseline does.
func recordBaseline(t *testing.T, root, stateDir string) {
	t.Helper()
	c, err := baseline.NewCoverage(verify.NewInstall(root, nil, ""))
	if err != nil {
		t.Fatal(err)
	}
	cur, err := c.Scan(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := baseline.New(root, cur, 0, "root").Write(filepath.Join(stateDir, baseline.FileName)); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (r *running) logged(msg string) bool {
	for _, e := range r.logs.All() {
		if strings.Contains(e.Message, msg) {
			return true
		}
	}
	return false
}

// Done when: a web shell dropped in themes/ or in an unsigned app, and a
// directive appended below the .htaccess marker, are alerted at once (by
// their events: no full scan runs meanwhile) once a baseline exists; an
// accept resolves them; a restart does not alert them again.
func TestUnsignedAttacks(t *testing.T) {
	t.Parallel()
	root := demoTree(t)
	stateDir := t.TempDir()
	writeFile(t, root+"/themes/mine/core/templates/layout.php", "<?php // theme")
	writeFile(t, root+"/apps/mine/appinfo/info.xml", "<info/>")
	writeFile(t, root+"/apps/mine/lib/a.php", "<?php // unsigned app")
	writeFile(t, root+"/apps/mine/lib/deep/more/b.js", "// deep in the unsigned app")
	recordBaseline(t, root, stateDir)
	r := start(t, testConfig(root, stateDir))
	if !r.logged("unsigned code: checked against the baseline of") {
		t.Fatal("the daemon did not say it checks unsigned code against the baseline")
	}
	if n := len(r.d.Findings()); n != 0 {
		t.Fatalf("%d findings right after the baseline: %v", n, r.d.Findings())
	}
	ht, err := os.ReadFile(root + "/.htaccess")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, key string
		do        func()
		kind      kind.Kind
	}{
		{"web shell in themes/", "unsigned:themes/mine/shell.php", func() { writeFile(t, root+"/themes/mine/shell.php", "<?php system($_GET['c']);") }, kind.UnsignedExtra},
		{"web shell in an unsigned app", "unsigned:apps/mine/lib/shell.php", func() { writeFile(t, root+"/apps/mine/lib/shell.php", "<?php eval($_POST['x']);") }, kind.UnsignedExtra},
		{"unsigned app file changed, deep", "unsigned:apps/mine/lib/deep/more/b.js", func() { writeFile(t, root+"/apps/mine/lib/deep/more/b.js", "fetch('//evil')") }, kind.UnsignedChanged},
		{"php_value below the .htaccess marker", "unsigned:.htaccess", func() {
			writeFile(t, root+"/.htaccess", string(ht)+"php_value auto_prepend_file /var/www/data/x.png\n")
		}, kind.HtaccessDirective},
		{"PHP in config/", "unsigned:config/evil.config.php", func() { writeFile(t, root+"/config/evil.config.php", "<?php system('id');") }, kind.UnsignedExtra},
		{"theme file removed", "unsigned:themes/mine/core/templates/layout.php", func() { os.Remove(root + "/themes/mine/core/templates/layout.php") }, kind.UnsignedMissing},
	} {
		scans := r.fullScans()
		tt.do()
		took, ok := r.waitAlert(tt.key)
		if !ok {
			t.Errorf("%s: no alert for %s", tt.name, tt.key)
			continue
		}
		if n := r.fullScans() - scans; n != 0 {
			t.Errorf("%s: %d full scans before the alert, want none: it must be found by its event", tt.name, n)
		}
		t.Logf("%s: alerted in %v", tt.name, took)
		for _, e := range entriesOf(r.logs, sortAlert) {
			m := e.ContextMap()
			if m["integrity_scope"].(string)+":"+m["integrity_path"].(string) != tt.key {
				continue
			}
			if m["integrity_kind"] != string(tt.kind) || m["message_id"] != journal.AlertID(string(tt.kind)) {
				t.Errorf("%s: kind %v, message_id %v", tt.name, m["integrity_kind"], m["message_id"])
			}
			high := tt.kind == kind.HtaccessDirective || tt.kind == kind.UnsignedExtra
			if want := map[bool]zapcore.Level{true: zapcore.ErrorLevel, false: zapcore.WarnLevel}[high]; e.Level != want {
				t.Errorf("%s: logged at %v, want %v", tt.name, e.Level, want)
			}
			if tt.kind == kind.HtaccessDirective && !strings.Contains(e.Message, "HTACCESS_DIRECTIVE unsigned .htaccess: directives Nextcloud's installer does not write below the marker: line ") ||
				tt.kind == kind.HtaccessDirective && !strings.Contains(e.Message, ": php_value auto_prepend_file /var/www/data/x.png") {
				t.Errorf("the .htaccess alert does not name the directive and its line: %v", e.Message)
			}
		}
	}
	r.waitIdle(t)
	if got := len(r.d.Findings()); got != 6 {
		t.Errorf("%d findings, want 6: %v", got, r.d.Findings())
	}
	if got := findingsGauge(t, r, kind.UnsignedExtra, baseline.ScopeName); got != 3 {
		t.Errorf("integrityd_findings{kind=UNSIGNED_EXTRA,scope=unsigned} = %v, want 3", got)
	}
	if got := findingsGauge(t, r, kind.UnsignedExtra, "core"); got != -1 {
		t.Errorf("an unsigned kind on core: %v", got)
	}
	// The admin accepts everything: the baseline file changes in the
	// state directory, the daemon reads it again, the findings resolve.
	recordBaseline(t, root, stateDir)
	waitFor(t, "findings resolved after the accept", func() bool { return len(r.d.Findings()) == 0 })
	if fs := r.d.Findings(); len(fs) != 0 {
		t.Fatalf("findings after the accept: %v", fs)
	}
	if !r.logged("(read again)") {
		t.Error("the daemon did not log that it read the baseline again")
	}
	// A restart on the same state: no findings, no alerts.
	r.stop()
	st, err := state.Load(stateDir)
	if err != nil || !strings.HasPrefix(st.Unsigned, "unsigned code: checked against the baseline of") || st.UnsignedFiles != 7 {
		t.Errorf("state: %v, unsigned %q, %d files", err, st.Unsigned, st.UnsignedFiles)
	}
	r2 := start(t, testConfig(root, stateDir))
	if fs := r2.d.Findings(); len(fs) != 0 || len(entriesOf(r2.logs, sortAlert)) != 0 {
		t.Errorf("after a restart: findings %v", fs)
	}
	// A change made while the daemon is down is found by its first scan.
	r2.stop()
	writeFile(t, root+"/themes/mine/late.php", "<?php")
	r3 := start(t, testConfig(root, stateDir))
	if a := alerts(r3.logs, sortAlert); a["unsigned:themes/mine/late.php"] != 1 {
		t.Errorf("a file added while stopped: alerts %v", a)
	}
	// A restart with that finding outstanding keeps it, without alerting
	// it again, also across a rescan and a change of the apps.
	r3.stop()
	r4 := start(t, testConfig(root, stateDir))
	writeFile(t, root+"/apps/other/appinfo/info.xml", "<info/>")
	r4.waitIdle(t)
	if err := r4.d.Rescan(t.Context()); err != nil {
		t.Fatal(err)
	}
	fs := r4.d.Findings()
	if a := alerts(r4.logs, sortAlert); len(fs) != 2 || a["unsigned:themes/mine/late.php"] != 0 || a["unsigned:apps/other/appinfo/info.xml"] != 1 {
		t.Errorf("after a restart: findings %v, alerts %v", fs, a)
	}
}

// Without a baseline the daemon says unsigned code is not checked, and
// does not check it; a baseline that cannot be read stops it, naming the
// file.
// The first baseline recorded while the daemon runs is taken in at
// once: a web shell written right after it is alerted by its event, and
// no full scan runs for the baseline (while one ran, with no view of the
// coverage yet, the loop let such a shell wait for the next full scan).
func TestUnsignedFirstBaselineAtOnce(t *testing.T) {
	t.Parallel()
	root := demoTree(t)
	stateDir := t.TempDir()
	writeFile(t, root+"/themes/mine/core/templates/layout.php", "<?php // theme")
	r := start(t, testConfig(root, stateDir))
	r.waitIdle(t)
	scans := r.fullScans()
	recordBaseline(t, root, stateDir)
	waitFor(t, "the first baseline read", func() bool { return r.logged("checked against the baseline of") })
	writeFile(t, root+"/themes/mine/shell.php", "<?php system($_GET['c']);")
	if _, ok := r.waitAlert("unsigned:themes/mine/shell.php"); !ok {
		t.Fatal("no alert for a web shell written right after the first baseline")
	}
	r.waitIdle(t)
	if n := r.fullScans() - scans; n != 0 {
		t.Errorf("%d full scans after the first baseline, want none: the daemon takes it in at once and finds the shell by its event", n)
	}
	if fs := r.d.Findings(); len(fs) != 1 {
		t.Errorf("findings: %v, want the shell's only", fs)
	}
	if got := r.d.Snapshot().meta.UnsignedFiles; got == 0 {
		t.Errorf("unsigned files covered: %d, want the coverage's", got)
	}
}

func TestUnsignedModes(t *testing.T) {
	t.Parallel()
	root := demoTree(t)
	stateDir := t.TempDir()
	r := start(t, testConfig(root, stateDir))
	if !r.logged("unsigned code: not checked (no baseline; run integrityd baseline)") {
		t.Error("the daemon did not say unsigned code is not checked")
	}
	writeFile(t, root+"/themes/shell.php", "<?php")
	r.waitIdle(t)
	if fs := r.d.Findings(); len(fs) != 0 {
		t.Errorf("findings without a baseline: %v", fs)
	}
	// The first baseline, recorded while the daemon runs, starts the checks.
	recordBaseline(t, root, stateDir)
	waitFor(t, "the first baseline read", func() bool { return r.logged("checked against the baseline of") })
	r.waitIdle(t)
	writeFile(t, root+"/themes/shell2.php", "<?php")
	if _, ok := r.waitAlert("unsigned:themes/shell2.php"); !ok {
		t.Error("no alert after the first baseline was recorded while running")
	}
	r.stop()
	os.WriteFile(filepath.Join(stateDir, baseline.FileName), []byte("{"), 0o640)
	if _, err := New(testConfig(root, stateDir), r.d.log); err == nil || !strings.Contains(err.Error(), baseline.FileName) {
		t.Errorf("a damaged baseline: %v", err)
	}
	recordBaseline(t, root, stateDir)
	cfg := testConfig(root, stateDir)
	cfg.Unsigned = baseline.Off
	r2 := start(t, cfg)
	if !r2.logged("unsigned code: not checked (unsigned = off)") {
		t.Error("unsigned = off not said")
	}
	writeFile(t, root+"/themes/shell3.php", "<?php")
	r2.waitIdle(t)
	if fs := r2.d.Findings(); len(fs) != 0 {
		t.Errorf("findings with unsigned = off: %v", fs)
	}
	// A reload with unsigned = auto turns it on: the rescan finds what
	// came meanwhile, the watches follow.
	cfg.Unsigned = baseline.Auto
	if err := r2.d.Reload(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	if !r2.logged("checked against the baseline of") {
		t.Error("the reload did not turn unsigned checks on")
	}
	// Reload returns once the rescan merged; its entries are written at
	// the end of that round of the loop.
	if _, ok := r2.waitAlert("unsigned:themes/shell3.php"); !ok {
		t.Error("no alert after the reload for the shell written while unsigned = off")
	}
	r2.waitIdle(t)
	if a := alerts(r2.logs, sortAlert); a["unsigned:themes/shell3.php"] != 1 {
		t.Errorf("after the reload: alerts %v", a)
	}
	writeFile(t, root+"/themes/sub/shell4.php", "<?php")
	if _, ok := r2.waitAlert("unsigned:themes/sub/shell4.php"); !ok {
		t.Error("no alert for a shell in a new directory of themes/ after the reload")
	}
}

// findingsGauge is integrityd_findings{kind, scope}, -1 when absent.
func findingsGauge(t *testing.T, r *running, kind kind.Kind, scope string) float64 {
	t.Helper()
	mfs, err := r.d.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "integrityd_findings" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["kind"] == string(kind) && labels["scope"] == scope {
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

// A huge file dropped in themes/ is hashed off the loop: a web shell
// dropped right after it (once the huge file's batch is handled) is
// alerted at once, before the huge file, which is alerted too once
// hashed.
func TestUnsignedBigFile(t *testing.T) {
	t.Parallel()
	root := demoTree(t)
	stateDir := t.TempDir()
	writeFile(t, root+"/themes/mine/README", "theme")
	recordBaseline(t, root, stateDir)
	r := start(t, testConfig(root, stateDir))
	bigSeen := r.sync.expectBatch(root + "/themes/mine/big.php")
	f, err := os.Create(root + "/themes/mine/big.php")
	if err != nil {
		t.Fatal(err)
	}
	// 1 GB sparse: seconds to hash, nothing on disk.
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	select { // its batch first
	case <-bigSeen:
	case <-time.After(hangGuard):
		t.Fatal("no batch with the huge file")
	}
	writeFile(t, root+"/themes/mine/shell.php", "<?php system($_GET['c']);")
	if took, ok := r.waitAlert("unsigned:themes/mine/shell.php"); !ok {
		t.Error("a shell behind a huge file: no alert")
	} else {
		t.Logf("shell alerted in %v while the huge file is hashed", took)
	}
	if _, ok := r.waitAlert("unsigned:themes/mine/big.php"); !ok {
		t.Fatal("the huge file was never alerted")
	}
	if shell, big := r.alertIndex("unsigned:themes/mine/shell.php"), r.alertIndex("unsigned:themes/mine/big.php"); shell > big {
		t.Error("the shell, written after the huge file, was alerted after it: the huge file held up the loop")
	}
}
