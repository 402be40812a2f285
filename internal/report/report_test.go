package report

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/verify"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestReportHardLink: HARD_LINK findings sort after EXTRA_FILE and before
// EXCEPTION, and every format shows them as their own kind, with expected
// and current hashes like INVALID_HASH (testdata/report-hardlink-*).
func TestReportHardLink(t *testing.T) {
	h := func(b byte) finding.Hash {
		var x finding.Hash
		for i := range x {
			x[i] = b
		}
		return x
	}
	fs := []finding.Finding{
		{Scope: "files", Kind: kind.HardLink, Path: "js/files.js", Expected: h(0x11), Current: h(0x11), Message: "file has 2 links: a write through another name is not seen"},
		{Scope: "core", Kind: kind.Exception, Path: "lib/status.php", Expected: h(0x22), Class: verify.ReadErrorClass, Message: "on procfs (not a real file system): not read"},
		{Scope: "core", Kind: kind.HardLink, Path: "lib/base.php", Expected: h(0x33), Current: h(0x33), Message: "file has 2 links: a write through another name is not seen"},
		{Scope: "core", Kind: kind.ExtraFile, Path: "lib/pagemap.php", Message: "on procfs (not a real file system): not read"},
		{Scope: "core", Kind: kind.InvalidHash, Path: "lib/private/Server.php", Expected: h(0x44), Current: h(0x55), Message: "file has 2 links: a write through another name is not seen"},
		{Scope: "core", Kind: kind.HardLink, Path: ".htaccess", Expected: h(0x66), Current: h(0x66), Message: "file has 3 links: a write through another name is not seen"},
	}
	rep := verify.ReportFromFindings(fs)
	var order []kind.Kind
	for _, f := range rep.Scopes[0].Findings {
		order = append(order, f.Kind)
	}
	if want := []kind.Kind{kind.InvalidHash, kind.ExtraFile, kind.HardLink, kind.HardLink, kind.Exception}; !slices.Equal(order, want) {
		t.Errorf("core findings in order %v, want %v", order, want)
	}
	for _, format := range Formats {
		t.Run(format, func(t *testing.T) {
			got, err := Format(rep, format, false)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "report-hardlink-"+format+".golden")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("Format(%s):\n%s\nwant (%s):\n%s", format, got, golden, want)
			}
		})
	}
}
