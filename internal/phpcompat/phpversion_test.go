package phpcompat

import (
	"encoding/json"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// versionCases are versions as apps write them in info.xml, and the odd
// ones PHP's canonicalisation has rules for.
var versionCases = []string{"", "0", "1", "1.0", "1.0.0", "1.0.1", "1.10", "1.9", "1.0rc1", "1.0RC1", "1.0-rc.1",
	"1.0beta", "1.0b2", "1.0alpha", "1.0a", "1.0dev", "1.0pl1", "1.0p", "1.0-foo", "1.0.x", "1.0+build",
	"1..0", "1.0_1", "v1.0", "1.0.0.0", "28.0.0", "4.8.1", "4.10.0", "01.2", "1.02", "#", "#N#", "1#2",
	"99999999999999999999", "1.0 ", " 1.0", "1-", "-1", "a", "dev", "RC", "pl", ".", "-", ".1", "1.", "..", "#.1"}

// TestPHPVersionCompare: VersionCompare agrees with PHP's
// version_compare on every pair of versionCases and on random versions
// (when php is installed).
func TestPHPVersionCompare(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"1.0", "1.0.0", -1}, {"1.0rc1", "1.0", -1}, {"1.0", "1.0pl1", -1}, {"1.10", "1.9", 1},
		{"", "0", -1}, {"1.0dev", "1.0alpha", -1}, {"1.0-foo", "1.0dev", -1}, {"4.10.0", "4.8.1", 1},
	} {
		if got := VersionCompare(tt.a, tt.b); got != tt.want {
			t.Errorf("version_compare(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
	php, err := exec.LookPath("php")
	if err != nil {
		t.Skip("php is not on PATH: no comparison with PHP's own version_compare")
	}
	vs := append([]string(nil), versionCases...)
	r := rand.New(rand.NewSource(9))
	parts := []string{"0", "1", "2", "10", "rc", "RC1", "beta", "b", "a", "alpha", "dev", "pl", "p", "x", "#", "9"}
	seps := []string{".", "-", "_", "+", "", " ", "~"}
	for range 150 {
		var b strings.Builder
		for j := 0; j < 1+r.Intn(4); j++ {
			if j > 0 {
				b.WriteString(seps[r.Intn(len(seps))])
			}
			b.WriteString(parts[r.Intn(len(parts))])
		}
		vs = append(vs, b.String())
	}
	in, err := json.Marshal(vs)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "versions.json")
	if err := os.WriteFile(file, in, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(php, "-r", `$v = json_decode(file_get_contents($argv[1]));
		$r = []; foreach ($v as $a) { $row = []; foreach ($v as $b) { $row[] = version_compare($a, $b); } $r[] = $row; }
		echo json_encode($r);`, file).Output()
	if err != nil {
		t.Fatalf("php: %v", err)
	}
	var want [][]int
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatalf("php output: %v", err)
	}
	bad := 0
	for i, a := range vs {
		for j, b := range vs {
			if got := VersionCompare(a, b); got != want[i][j] && bad < 20 {
				bad++
				t.Errorf("version_compare(%q, %q): PHP %d, ours %d", a, b, want[i][j], got)
			}
		}
	}
}
