package baseline

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/integrityd/integrityd/internal/verify"
)

// unsignedTree builds an install with something in every corner the
// unsigned coverage covers, and in every corner it does not.
func unsignedTree(t *testing.T) (root string, in *verify.Install) {
	t.Helper()
	root = t.TempDir()
	custom := t.TempDir() // an apps root outside the root
	files := map[string]string{
		"version.php":                         "<?php $OC_Version = [33, 0, 0, 1];",
		"index.php":                           "<?php // core",
		"lib/base.php":                        "<?php // core",
		"core/shipped.json":                   `{"shippedApps": ["files"]}`,
		"apps/files/appinfo/info.xml":         "<info/>",
		"apps/files/lib/x.php":                "<?php // shipped",
		"apps/signed/appinfo/info.xml":        "<info/>",
		"apps/signed/appinfo/signature.json":  "{}",
		"apps/signed/lib/x.php":               "<?php // signed",
		"apps/mine/appinfo/info.xml":          "<info/>",
		"apps/mine/lib/app.php":               "<?php // unsigned app",
		"apps/mine/js/app.js":                 "// unsigned app js",
		"apps/leftover/shell.php":             "<?php // no info.xml",
		"apps/leftover/readme.txt":            "text",
		"apps/loose.php":                      "<?php // loose in the apps root",
		"apps/notes.txt":                      "text",
		"themes/t/core/templates/layout.php":  "<?php // theme",
		"themes/t/core/css/x.css":             "css",
		"config/config.php":                   "<?php $CONFIG = [];",
		"config/extra.config.php":             "<?php $CONFIG = ['a' => 1];",
		"config/.htaccess":                    "deny from all",
		"config/notes.txt":                    "text",
		"updater/index.php":                   "<?php // updater",
		"data/alice/files/x.php":              "<?php // user file",
		"data/.htaccess":                      "deny",
		"assets/a.PHTML":                      "x",
		".htaccess":                           "# signed part\n" + verify.HtaccessMarker + "\n\nErrorDocument 403 /index.php/error/403\n",
		"core/.user.ini":                      "core's own, signed",
		"apps/mine/.user.ini":                 "upload_max_filesize=1G",
		"themes/README":                       "t",
		"lost+found/x.phar":                   "p",
		"config/sub/deep/x.php":               "<?php // deep in config",
		"apps/signed/appinfo/extra-ignored.x": "in a signed scope",
	}
	for k, v := range files {
		write(t, filepath.Join(root, k), v)
	}
	write(t, filepath.Join(custom, "ext/appinfo/info.xml"), "<info/>")
	write(t, filepath.Join(custom, "ext/lib/e.php"), "<?php // unsigned app, other root")
	in = verify.NewInstall(root, []string{filepath.Join(root, "apps"), custom}, "")
	return root, in
}

func write(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestUnsignedCoverage(t *testing.T) {
	root, in := unsignedTree(t)
	c, err := NewCoverage(in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	custom := in.AppsRoots[1]
	want := []string{
		".htaccess",
		"apps/leftover/shell.php",
		"apps/loose.php",
		"apps/mine/.user.ini",
		"apps/mine/appinfo/info.xml",
		"apps/mine/js/app.js",
		"apps/mine/lib/app.php",
		"assets/a.PHTML",
		"config/.htaccess",
		"config/extra.config.php",
		"config/sub/deep/x.php",
		"lost+found/x.phar",
		"themes/README",
		"themes/t/core/css/x.css",
		"themes/t/core/templates/layout.php",
		"updater/index.php",
		custom + "/ext/appinfo/info.xml",
		custom + "/ext/lib/e.php",
	}
	slices.Sort(want)
	keys := sortedKeys(got)
	if !slices.Equal(keys, want) {
		t.Fatalf("covered:\n%s\nwant:\n%s", strings.Join(keys, "\n"), strings.Join(want, "\n"))
	}
	if got["apps/mine/lib/app.php"].Hash.IsZero() || got["apps/mine/lib/app.php"].Size != int64(len("<?php // unsigned app")) {
		t.Errorf("app.php: %+v", got["apps/mine/lib/app.php"])
	}
	if ht := got[".htaccess"]; ht.Size != int64(len(verify.HtaccessMarker+"\n\nErrorDocument 403 /index.php/error/403\n")) || len(ht.directives) != 0 {
		t.Errorf(".htaccess below the marker: %+v", ht)
	}
	if got, want := c.UnsignedApps(), []string{root + "/apps/mine", custom + "/ext"}; !slices.Equal(got, want) {
		t.Errorf("unsigned apps %q, want %q", got, want)
	}
	// ScanPath and Covers agree with the full scan, file by file.
	for _, k := range want {
		p := c.path(k)
		if !c.Covers(p) {
			t.Errorf("Covers(%s) = false", p)
		}
		key, files, err := c.ScanPath(context.Background(), p)
		if err != nil || key != k || len(files) != 1 || !files[k].same(got[k]) {
			t.Errorf("ScanPath(%s) = %q %+v %v, want %+v", p, key, files, err, got[k])
		}
	}
	for _, k := range []string{"index.php", "lib/base.php", "apps/files/lib/x.php", "apps/signed/lib/x.php", "config/config.php",
		"config/notes.txt", "data/alice/files/x.php", "data/.htaccess", "apps/leftover/readme.txt", "apps/notes.txt", "core/.user.ini"} {
		_, files, err := c.ScanPath(context.Background(), c.path(k))
		if err != nil || len(files) != 0 {
			t.Errorf("ScanPath(%s) = %+v %v, want nothing", k, files, err)
		}
	}
	// A directory: everything covered below it.
	_, files, err := c.ScanPath(context.Background(), root+"/apps/mine")
	if err != nil || len(files) != 4 {
		t.Errorf("ScanPath(apps/mine) = %d files %v, want 4", len(files), err)
	}
	for _, d := range []string{root + "/themes/t", root + "/config", root + "/apps", custom, root + "/apps/leftover"} {
		if !c.WatchDir(d) {
			t.Errorf("WatchDir(%s) = false", d)
		}
	}
	for _, d := range []string{root + "/lib", root + "/data/alice", root + "/apps/signed"} {
		if c.WatchDir(d) {
			t.Errorf("WatchDir(%s) = true", d)
		}
	}
}

// A custom data directory inside the root is skipped; ROOT/data is then
// an ordinary excluded directory.
func TestUnsignedCustomDataDir(t *testing.T) {
	root, _ := unsignedTree(t)
	write(t, root+"/store/u/files/shell.php", "<?php")
	write(t, root+"/lib/big/x.php", "<?php // excluded by the admin")
	write(t, root+"/lib/big/x.js", "// excluded by the admin")
	in := verify.NewInstall(root, nil, root+"/store")
	in.Exclude = []string{root + "/lib/big", root + "/lib/base.php", root + "/index.html"}
	write(t, root+"/index.html", "not executable")
	c, err := NewCoverage(in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got["store/u/files/shell.php"]; ok {
		t.Error("the data directory is covered")
	}
	for k, want := range map[string]bool{"lib/big/x.php": true, "lib/big/x.js": false, "lib/base.php": true, "index.html": false} {
		if _, ok := got[k]; ok != want {
			t.Errorf("admin-excluded %s covered: %v, want %v", k, ok, want)
		}
		if want && !c.Covers(root+"/"+k) {
			t.Errorf("Covers(%s) = false", k)
		}
	}
	if _, ok := got["data/alice/files/x.php"]; ok {
		// ROOT/data is not the data directory here, but core excludes it:
		// its PHP files are covered.
	} else {
		t.Error("ROOT/data/alice/files/x.php not covered although the data directory is elsewhere")
	}
}

func TestHtaccessDirectives(t *testing.T) {
	below := verify.HtaccessMarker + `

ErrorDocument 403 /index.php/error/403
ErrorDocument 404 /index.php/error/404
<IfModule mod_rewrite.c>
  Options -MultiViews
  RewriteRule ^core/js/oc.js$ index.php [PT,E=PATH_INFO:$1]
  RewriteCond %{REQUEST_FILENAME} !/robots\.txt
  RewriteRule . index.php [PT,E=PATH_INFO:$1]
  RewriteBase /
  <IfModule mod_env.c>
    SetEnv front_controller_active true
    <IfModule mod_dir.c>
      DirectorySlash off
    </IfModule>
  </IfModule>
</IfModule>
# a comment
php_value auto_prepend_file /var/www/nextcloud/data/x.php
  AddHandler application/x-httpd-php .jpg
SetHandler \
  application/x-httpd-php
SetEnv PHPRC /tmp
RewriteRule ^x$ data/y.png [H=application/x-httpd-php]
<IfModule mod_php.c>
Action php-script /cgi-bin/x
`
	got := htaccessDirectives([]byte(below), 10)
	want := []directive{
		{28, "php_value", "php_value auto_prepend_file /var/www/nextcloud/data/x.php"},
		{29, "AddHandler", "AddHandler application/x-httpd-php .jpg"},
		{30, "SetHandler", "SetHandler application/x-httpd-php"},
		{32, "SetEnv", "SetEnv PHPRC /tmp"},
		{33, "RewriteRule", "RewriteRule ^x$ data/y.png [H=application/x-httpd-php]"},
		{34, "<IfModule", "<IfModule mod_php.c>"},
		{35, "Action", "Action php-script /cgi-bin/x"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}
}

func TestBaselineCompareAcceptRoundTrip(t *testing.T) {
	root, in := unsignedTree(t)
	ctx := context.Background()
	c, err := NewCoverage(in)
	if err != nil {
		t.Fatal(err)
	}
	first, err := c.Scan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b := New(root, first, 0, "root")
	path := filepath.Join(t.TempDir(), FileName)
	if err := b.Write(path); err != nil {
		t.Fatal(err)
	}
	b, err = Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if f := b.Compare(first, ""); len(f) != 0 {
		t.Fatalf("fresh baseline has findings: %+v", f)
	}
	// The attacks.
	write(t, root+"/themes/t/shell.php", "<?php system($_GET['c']);")
	write(t, root+"/apps/mine/lib/app.php", "<?php eval($_POST['x']);")
	os.Remove(root + "/apps/mine/js/app.js")
	os.Chmod(root+"/config/extra.config.php", 0o600)
	ht, _ := os.ReadFile(root + "/.htaccess")
	write(t, root+"/.htaccess", string(ht)+"php_value auto_prepend_file /tmp/x.php\n")
	cur, err := c.Scan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range b.Compare(cur, "") {
		got = append(got, string(f.Kind)+" "+f.Path+" "+f.Message)
	}
	want := []string{
		"HTACCESS_DIRECTIVE .htaccess directives Nextcloud's installer does not write below the marker: line 5: php_value auto_prepend_file /tmp/x.php",
		"UNSIGNED_CHANGED apps/mine/lib/app.php content changed (21 -> 24 bytes)",
		"UNSIGNED_CHANGED config/extra.config.php mode -rw-r--r-- -> -rw-------",
		"UNSIGNED_EXTRA themes/t/shell.php not in the baseline (25 bytes, -rw-r--r--)",
		"UNSIGNED_MISSING apps/mine/js/app.js in the baseline, gone",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Compare of one part sees only that part.
	if f := b.Compare(cur, "themes"); len(f) != 1 || f[0].Path != "themes/t/shell.php" {
		t.Errorf("Compare(themes) = %+v", f)
	}
	// Accept one path, then the rest.
	if acc := b.Accept(cur, []string{"themes/t/shell.php"}); !slices.Equal(acc, []string{"UNSIGNED_EXTRA themes/t/shell.php"}) {
		t.Errorf("accepted %q", acc)
	}
	if n := len(b.Compare(cur, "")); n != 4 {
		t.Errorf("%d findings after one accept, want 4", n)
	}
	if acc := b.Accept(cur, []string{""}); len(acc) != 4 {
		t.Errorf("accept-all took %q", acc)
	}
	if err := b.Write(path); err != nil {
		t.Fatal(err)
	}
	b, err = Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if f := b.Compare(cur, ""); len(f) != 0 {
		t.Errorf("findings after accepting all: %+v", f)
	}
}

func TestReadBaselineErrors(t *testing.T) {
	dir := t.TempDir()
	if b, err := Read(filepath.Join(dir, "none.json")); b != nil || err != nil {
		t.Errorf("missing file: %v %v", b, err)
	}
	for name, content := range map[string]string{
		"garbage.json": "{not json",
		"format.json":  `{"format": "other/1", "files": []}`,
		"nopath.json":  `{"format": "integrityd-baseline/1", "files": [{"hash": ""}]}`,
		"badhash.json": `{"format": "integrityd-baseline/1", "files": [{"path": "a", "hash": "zz"}]}`,
	} {
		p := filepath.Join(dir, name)
		write(t, p, content)
		if _, err := Read(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %v does not name the file", name, err)
		}
	}
	fifo := filepath.Join(dir, "fifo.json")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(fifo); err == nil {
		t.Error("a FIFO was read as a baseline")
	}
}

// A FIFO in the coverage is recorded as unreadable, never opened; a
// symlink to a directory by its target.
func TestUnsignedSpecialFiles(t *testing.T) {
	root, in := unsignedTree(t)
	if err := syscall.Mkfifo(root+"/themes/t/pipe.php", 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", root+"/themes/t/etc"); err != nil {
		t.Fatal(err)
	}
	c, _ := NewCoverage(in)
	got, err := c.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if f := got["themes/t/pipe.php"]; f.Err == "" || !f.Hash.IsZero() {
		t.Errorf("FIFO: %+v", f)
	}
	if f := got["themes/t/etc"]; f.Hash.IsZero() || f.Size != 4 {
		t.Errorf("symlink to a directory: %+v", f)
	}
}

func TestUnsignedScanCancelled(t *testing.T) {
	_, in := unsignedTree(t)
	c, _ := NewCoverage(in)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Scan(ctx); err == nil {
		t.Error("a cancelled scan returned no error")
	}
}

// Any content below the marker: no panic, lines within the text, each
// directive's text a line (or continued lines) of it.
func FuzzHtaccessDirectives(f *testing.F) {
	f.Add([]byte(verify.HtaccessMarker + "\nphp_value x 1\n"))
	f.Add([]byte("\\\n\\\nAddHandler a \\\n"))
	f.Add([]byte("RewriteRule a b [H=x]\r\n<IfModule mod_php.c>\n#\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		n := 1 + strings.Count(string(data), "\n")
		for _, d := range htaccessDirectives(data, 7) {
			if d.Line < 7 || d.Line >= 7+n || d.Name == "" || d.Text == "" || strings.HasPrefix(d.Text, "#") {
				t.Fatalf("directive %+v of %q", d, data)
			}
		}
	})
}
