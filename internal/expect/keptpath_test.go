package expect

import "testing"

// TestKeptPath: which archive entries the expectation keeps, and where;
// names that are not clean are never kept.
func TestKeptPath(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"nextcloud/core/signature.json", "core/signature.json"},
		{"./nextcloud/core/signature.json", "core/signature.json"},
		{"nextcloud/version.php", "version.php"},
		{"nextcloud/apps/files/appinfo/signature.json", "apps/files/appinfo/signature.json"},
		{"mail/appinfo/signature.json", "apps/mail/appinfo/signature.json"},
		{"nextcloud/lib/base.php", ""},
		{"nextcloud/apps/files/lib/App.php", ""},
		{"nextcloud/apps/files/appinfo/signature.json.bak", ""},
		{"nextcloud/appinfo/signature.json", ""},
		{"nextcloud/apps/../core/signature.json", ""},
		{"../nextcloud/core/signature.json", ""},
		{"/nextcloud/core/signature.json", ""},
		{"nextcloud//core/signature.json", ""},
		{"mail/sub/appinfo/signature.json", ""},
		{"core/signature.json", ""}, // a release is below nextcloud/
		{"", ""},
	} {
		got, ok := keptPath(c.in)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("keptPath(%q) = %q, %v; want %q", c.in, got, ok, c.want)
		}
	}
}
