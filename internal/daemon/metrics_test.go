package daemon

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
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
	// Only the kinds and scopes with findings, and the total; every
	// series names the install.
	want := strings.ReplaceAll(`
# HELP integrityd_findings Current findings, by kind and scope; only kinds and scopes that have some.
# TYPE integrityd_findings gauge
integrityd_findings{kind="FILE_MISSING",root="ROOT",scope="files"} 1
integrityd_findings{kind="INVALID_HASH",root="ROOT",scope="core"} 1
# HELP integrityd_findings_all Current findings, all kinds and scopes (0 when clean).
# TYPE integrityd_findings_all gauge
integrityd_findings_all{root="ROOT"} 2
# HELP integrityd_watched_files Files listed by the verified manifests.
# TYPE integrityd_watched_files gauge
integrityd_watched_files{root="ROOT"} 15
# HELP integrityd_scopes Scopes checked (core and apps).
# TYPE integrityd_scopes gauge
integrityd_scopes{root="ROOT"} 3
`, "ROOT", root)
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want), "integrityd_findings", "integrityd_findings_all", "integrityd_watched_files", "integrityd_scopes"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(m.Registry); err != nil || n < 20 {
		t.Errorf("%d metrics, %v", n, err)
	}
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, s := range mf.GetMetric() {
			if !slices.ContainsFunc(s.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == "root" && l.GetValue() == root }) {
				t.Errorf("%s: a series without root=%q: %v", mf.GetName(), root, s.GetLabel())
			}
		}
	}
	if problems, err := testutil.GatherAndLint(m.Registry); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}
