package config

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestPackageDocListsEveryKey: the package comment's "Keys:" list names
// exactly the keys the configuration file takes (settings with a key), so
// that it cannot go stale again when a setting is added.
func TestPackageDocListsEveryKey(t *testing.T) {
	src, err := os.ReadFile("config.go")
	if err != nil {
		t.Fatal(err)
	}
	doc, _, ok := strings.Cut(string(src), "\npackage config")
	if !ok {
		t.Fatal("no package clause in config.go")
	}
	_, list, ok := strings.Cut(doc, "// Keys")
	if !ok {
		t.Fatal(`config.go's package comment has no "Keys" list`)
	}
	list = strings.ReplaceAll(list, "//", " ")
	list = regexp.MustCompile(`\([^)]*\)`).ReplaceAllString(list, "") // remarks
	_, list, _ = strings.Cut(list, ":")
	var got []string
	for _, k := range strings.Split(list, ",") {
		k = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(k), "."))
		if k != "" {
			got = append(got, k)
		}
	}
	var want []string
	for _, s := range settings {
		if s.key != "" {
			want = append(want, s.key)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("config.go's Keys list\n got %q\nwant %q", got, want)
	}
}
