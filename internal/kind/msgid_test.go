package kind

import (
	"os"
	"strings"
	"testing"
)

// allIDs lists every MESSAGE_ID, in the catalog's order.
var allIDs = []string{IDInvalidHash, IDFileMissing, IDExtraFile, IDException, IDResolved, IDFullScan, IDNotWatched, IDEventsLost, IDStateError, IDTrustDiffer, IDScopeGone, IDMount, IDHardLink, IDFlood, IDDuplicate, IDDowngrade, IDConfig, IDUnenforced, IDSwapped, IDRootMoved, IDUpdate, IDFolded,
	IDUnsignedChanged, IDUnsignedExtra, IDUnsignedMissing, IDHtaccessDirective, IDBaseline, IDWritersUnknown}

// aliasIDs are the hand-typed MESSAGE_IDs these kinds had before they got
// random 128-bit IDs, old then new. The catalog keeps an entry for each old
// ID so that journal entries and queries written for them still resolve.
var aliasIDs = [][2]string{
	{"3c7e9a1f5b2d4c8e8a6f0d2b4e6c8a1f", IDHardLink},
	{"5d0f3b1e8a2c4e6f9b7d1c3a5e7f9b2d", IDScopeGone},
	{"8e4a6c2f0b1d4f3a9c5e7b2d4f6a8c0e", IDMount},
	{"e1f3a5c7b9d24e6f8a0c2e4b6d8f0a13", IDFlood},
	{"4f0c2b9e7a1d4e58b3c6d9a2e5f8b1c4", IDConfig},
}

// Every MESSAGE_ID is explained in the catalog, and the catalog names no
// other.
func TestCatalog(t *testing.T) {
	data, err := os.ReadFile("../../packaging/systemd/integrityd.catalog")
	if err != nil {
		t.Fatal(err)
	}
	var inCatalog []string
	for _, line := range strings.Split(string(data), "\n") {
		if id, ok := strings.CutPrefix(line, "-- "); ok {
			inCatalog = append(inCatalog, id)
		}
	}
	want := append([]string(nil), allIDs...)
	for _, a := range aliasIDs {
		want = append(want, a[0])
	}
	if strings.Join(inCatalog, ",") != strings.Join(want, ",") {
		t.Errorf("catalog IDs %v, want %v", inCatalog, want)
	}
	for _, id := range allIDs {
		if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
			t.Errorf("MESSAGE_ID %q is not 128 bits in hex", id)
		}
	}
}
