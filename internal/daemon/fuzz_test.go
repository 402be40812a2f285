package daemon

import (
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/verify"
)

// FuzzLocate maps arbitrary paths to scopes: no panic; a path is given to
// a scope only when it lies inside that scope's directory, under the key
// returned.
func FuzzLocate(f *testing.F) {
	for _, s := range []string{"/srv/nc/index.php", "/srv/nc/apps/files/lib/A.php", "/srv/nc/apps/files",
		"/srv/nc/apps", "/srv/nc/custom/x/appinfo/signature.json", "/srv/nc/core/shipped.json", "/etc/integrityd/root.crt",
		"/srv/nc/../nc/index.php", "/srv/nc//x", "/srv/ncx/a", ""} {
		f.Add(s)
	}
	in := verify.NewInstall("/srv/nc", []string{"/srv/nc/apps", "/srv/nc/custom"}, "")
	d := &Daemon{log: zap.NewNop()}
	l := newLoop(d, Config{Trust: "/etc/integrityd/root.crt", CRL: "/etc/integrityd/root.crl"}, in, nil)
	l.scopes["core"] = &scope{sc: in.Core()}
	l.scopes["files"] = &scope{sc: in.App("files", "/srv/nc/apps/files")}
	l.scopes["x"] = &scope{sc: in.App("x", "/srv/nc/custom/x")}
	f.Fuzz(func(t *testing.T, p string) {
		tg, ok, _, _ := l.cat.locate(p)
		if !ok {
			return
		}
		want := tg.scope.sc.Dir
		if tg.key != "" {
			want += "/" + tg.key
		}
		if filepath.Clean(p) != filepath.Clean(want) {
			t.Fatalf("locate(%q) = scope %s key %q, which names %q", p, tg.scope.sc.Name, tg.key, want)
		}
		if tg.scope.sc.Name == "core" {
			for _, a := range in.AppsRoots {
				if strings.HasPrefix(p, a+"/") {
					t.Fatalf("locate(%q): a path in apps directory %s went to core", p, a)
				}
			}
		}
		topmost([]string{tg.key, tg.key + "/a", ""})
	})
}
