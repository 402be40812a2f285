package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetrics(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "nc")
	if err := buildDemoTree(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	r := start(t, testConfig(root, t.TempDir()))
	os.WriteFile(filepath.Join(root, "index.php"), []byte("evil"), 0o644)
	os.Remove(filepath.Join(root, "apps/files/js/files.js"))
	r.waitIdle(t)
	m := r.d.Metrics()
	if got := testutil.ToFloat64(m.alerts.WithLabelValues("INVALID_HASH")); got != 1 {
		t.Errorf("alerts_total{INVALID_HASH} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.fullScans); got != 1 {
		t.Errorf("full_scans_total = %v, want 1", got)
	}
	want := `
# HELP integrityd_findings Current findings, by kind and scope.
# TYPE integrityd_findings gauge
integrityd_findings{kind="DUPLICATE_APP",scope="core"} 0
integrityd_findings{kind="EXCEPTION",scope="core"} 0
integrityd_findings{kind="DUPLICATE_APP",scope="dashboard"} 0
integrityd_findings{kind="EXCEPTION",scope="dashboard"} 0
integrityd_findings{kind="DUPLICATE_APP",scope="files"} 0
integrityd_findings{kind="EXCEPTION",scope="files"} 0
integrityd_findings{kind="EXTRA_FILE",scope="core"} 0
integrityd_findings{kind="EXTRA_FILE",scope="dashboard"} 0
integrityd_findings{kind="EXTRA_FILE",scope="files"} 0
integrityd_findings{kind="HARD_LINK",scope="core"} 0
integrityd_findings{kind="HARD_LINK",scope="dashboard"} 0
integrityd_findings{kind="HARD_LINK",scope="files"} 0
integrityd_findings{kind="INVALID_HASH",scope="core"} 1
integrityd_findings{kind="INVALID_HASH",scope="dashboard"} 0
integrityd_findings{kind="INVALID_HASH",scope="files"} 0
integrityd_findings{kind="FILE_MISSING",scope="core"} 0
integrityd_findings{kind="FILE_MISSING",scope="dashboard"} 0
integrityd_findings{kind="FILE_MISSING",scope="files"} 1
integrityd_findings{kind="VERSION_DOWNGRADE",scope="core"} 0
integrityd_findings{kind="VERSION_DOWNGRADE",scope="dashboard"} 0
integrityd_findings{kind="VERSION_DOWNGRADE",scope="files"} 0
# HELP integrityd_watched_files Files listed by the verified manifests.
# TYPE integrityd_watched_files gauge
integrityd_watched_files 15
# HELP integrityd_scopes Scopes checked (core and apps).
# TYPE integrityd_scopes gauge
integrityd_scopes 3
`
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want), "integrityd_findings", "integrityd_watched_files", "integrityd_scopes"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(m.Registry); err != nil || n < 20 {
		t.Errorf("%d metrics, %v", n, err)
	}
	if problems, err := testutil.GatherAndLint(m.Registry); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}
