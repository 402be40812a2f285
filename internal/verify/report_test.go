package verify

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestReportHardLink: HARD_LINK findings sort after EXTRA_FILE and before
// EXCEPTION, and every format shows them as their own kind, with expected
// and current hashes like INVALID_HASH (testdata/report-hardlink-*).
func TestReportHardLink(t *testing.T) {
	h := func(b byte) Hash {
		var x Hash
		for i := range x {
			x[i] = b
		}
		return x
	}
	fs := []Finding{
		{Scope: "files", Kind: HardLink, Path: "js/files.js", Expected: h(0x11), Current: h(0x11), Message: "file has 2 links: a write through another name is not seen"},
		{Scope: "core", Kind: KindException, Path: "lib/status.php", Expected: h(0x22), Class: readErrorClass, Message: "on procfs (not a real file system): not read"},
		{Scope: "core", Kind: HardLink, Path: "lib/base.php", Expected: h(0x33), Current: h(0x33), Message: "file has 2 links: a write through another name is not seen"},
		{Scope: "core", Kind: ExtraFile, Path: "lib/pagemap.php", Message: "on procfs (not a real file system): not read"},
		{Scope: "core", Kind: InvalidHash, Path: "lib/private/Server.php", Expected: h(0x44), Current: h(0x55), Message: "file has 2 links: a write through another name is not seen"},
		{Scope: "core", Kind: HardLink, Path: ".htaccess", Expected: h(0x66), Current: h(0x66), Message: "file has 3 links: a write through another name is not seen"},
	}
	rep := ReportFromFindings(fs)
	var order []Kind
	for _, f := range rep.Scopes[0].Findings {
		order = append(order, f.Kind)
	}
	if want := []Kind{InvalidHash, ExtraFile, HardLink, HardLink, KindException}; !slices.Equal(order, want) {
		t.Errorf("core findings in order %v, want %v", order, want)
	}
	for _, format := range Formats {
		t.Run(format, func(t *testing.T) {
			got, err := rep.Format(format, false)
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
