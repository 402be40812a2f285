package verify

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/integrityd/integrityd/internal/kind"
)

func infoXMLOf(id, version string) []byte {
	return []byte("<?xml version=\"1.0\"?>\n<info>\n  <id>" + id + "</id>\n  <version>" + version + "</version>\n</info>\n")
}

// TestAppsAsNextcloudFindsThem: a directory of an apps root is an app only
// with appinfo/info.xml; an app id in two apps roots is the copy with the
// highest version, the other copy is checked too as ID@ROOT, and both carry
// the duplicate on their info.xml.
func TestAppsAsNextcloudFindsThem(t *testing.T) {
	p := newSignPKI(t)
	root := t.TempDir()
	apps, custom := filepath.Join(root, "apps"), filepath.Join(root, "custom_apps")
	writeFile(t, filepath.Join(root, "version.php"), []byte("<?php\n$OC_Version = array(33,0,0,16);\n$OC_VersionString = '33.0.0';\n$OC_Channel = 'stable';\n"))
	writeFile(t, filepath.Join(root, "core", "shipped.json"), []byte(`{"shippedApps":["files"]}`))
	// files: shipped, one copy. leftover: no info.xml (an old app's
	// remains). notes: signed, in both roots, custom_apps has the higher
	// version (4.10.0 > 4.9.1 by version_compare, not by string order).
	writeFile(t, filepath.Join(apps, "files", "appinfo", "info.xml"), infoXMLOf("files", "2.0.0"))
	writeFile(t, filepath.Join(apps, "leftover", "appinfo", "signature.json"), []byte("{}"))
	writeFile(t, filepath.Join(apps, "leftover", "js", "x.js"), []byte("x"))
	writeFile(t, filepath.Join(apps, "notes", "appinfo", "info.xml"), infoXMLOf("notes", "4.9.1"))
	writeFile(t, filepath.Join(apps, "notes", "lib", "a.php"), []byte("<?php // 4.9.1"))
	writeFile(t, filepath.Join(custom, "notes", "appinfo", "info.xml"), infoXMLOf("notes", "4.10.0"))
	writeFile(t, filepath.Join(custom, "notes", "lib", "a.php"), []byte("<?php // 4.10.0"))
	in := NewInstall(root, []string{apps, custom}, "")
	p.sign(t, in.App("notes", filepath.Join(apps, "notes")))
	p.sign(t, in.App("notes", filepath.Join(custom, "notes")))

	scopes, warnings, err := in.Apps()
	if err != nil || len(warnings) > 0 {
		t.Fatalf("Apps: %v %v", warnings, err)
	}
	var got []string
	for _, s := range scopes {
		got = append(got, s.Name+"="+s.Dir)
	}
	want := []string{"files=" + apps + "/files", "notes=" + custom + "/notes", "notes@" + apps + "=" + apps + "/notes"}
	if !slices.Equal(got, want) {
		t.Fatalf("scopes\n got %q\nwant %q", got, want)
	}
	if sc := in.App("notes", ""); sc.Dir != custom+"/notes" {
		t.Errorf("App(notes) is %s, want the copy Nextcloud loads", sc.Dir)
	}
	for _, sc := range scopes[1:] {
		res, err := sc.Check(context.Background(), p.trust)
		if err != nil {
			t.Fatal(err)
		}
		if res.Exception != nil || len(res.Findings) != 1 {
			t.Fatalf("%s: %+v %+v", sc.Name, res.Exception, res.Findings)
		}
		f := res.Findings[0]
		if f.Kind != kind.DuplicateApp || f.Path != "appinfo/info.xml" || !strings.Contains(f.Message, "Nextcloud loads "+custom+"/notes (version 4.10.0)") {
			t.Errorf("%s: %+v, want DUPLICATE_APP naming the loaded copy", sc.Name, f)
		}
	}
	// A changed info.xml of the shadowed copy is its INVALID_HASH, with
	// the duplicate in its message (one finding per path).
	writeFile(t, filepath.Join(apps, "notes", "appinfo", "info.xml"), infoXMLOf("notes", "4.9.2"))
	scopes, _, _ = in.Apps()
	res, err := scopes[2].Check(context.Background(), p.trust)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) != 1 || res.Findings[0].Kind != kind.InvalidHash || !strings.Contains(res.Findings[0].Message, "is in 2 apps roots") {
		t.Errorf("changed info.xml of the other copy: %+v", res.Findings)
	}
}

// TestAppsShadowUnsigned: the attack the duplicate rule is for: a copy with
// a higher version and no signature.json, in an apps root the attacker
// added. Nextcloud loads it and checks nothing (it is not shipped and not
// signed); integrityd checks it as the app, and it fails.
func TestAppsShadowUnsigned(t *testing.T) {
	p := newSignPKI(t)
	root := t.TempDir()
	apps, evil := filepath.Join(root, "apps"), filepath.Join(root, "evil")
	writeFile(t, filepath.Join(apps, "notes", "appinfo", "info.xml"), infoXMLOf("notes", "4.9.1"))
	writeFile(t, filepath.Join(evil, "notes", "appinfo", "info.xml"), infoXMLOf("notes", "99.0.0"))
	writeFile(t, filepath.Join(evil, "notes", "lib", "shell.php"), []byte("<?php system($_GET['c']);"))
	in := NewInstall(root, []string{apps, evil}, "")
	p.sign(t, in.App("notes", filepath.Join(apps, "notes")))
	scopes, _, err := in.Apps()
	if err != nil {
		t.Fatal(err)
	}
	if len(scopes) != 2 || scopes[0].Name != "notes" || scopes[0].Dir != evil+"/notes" {
		t.Fatalf("scopes %+v", scopes)
	}
	res, err := scopes[0].Check(context.Background(), p.trust)
	if err != nil {
		t.Fatal(err)
	}
	if res.Exception == nil || res.Exception.Message != MsgNoSignature {
		t.Errorf("loaded unsigned copy: %+v", res.Exception)
	}
}

// TestInitSyncLockByVersion: the official Docker image's
// nextcloud-init-sync.lock is excluded from 30.0.1 on, an EXTRA_FILE
// before, as each release's Checker does.
func TestInitSyncLockByVersion(t *testing.T) {
	p := newSignPKI(t)
	for _, tt := range []struct {
		version string
		extra   bool
	}{{"array(25,0,12,1)", true}, {"array(30,0,0,14)", true}, {"array(30,0,1,2)", false}, {"array(33,0,0,16)", false}, {"", false}} {
		root := t.TempDir()
		writeFile(t, filepath.Join(root, "index.php"), []byte("<?php"))
		writeFile(t, filepath.Join(root, "core", "x.js"), []byte("x"))
		if tt.version != "" {
			writeFile(t, filepath.Join(root, "version.php"), []byte("<?php\n$OC_Version = "+tt.version+";\n$OC_Channel = 'stable';\n"))
		}
		in := NewInstall(root, nil, "")
		p.sign(t, in.Core())
		writeFile(t, filepath.Join(root, "nextcloud-init-sync.lock"), nil)
		res, err := in.Core().Check(context.Background(), p.trust)
		if err != nil {
			t.Fatal(err)
		}
		extra := len(res.Findings) == 1 && res.Findings[0].Kind == kind.ExtraFile && res.Findings[0].Path == "nextcloud-init-sync.lock"
		if extra != tt.extra || (!tt.extra && len(res.Findings) > 0) {
			t.Errorf("version %q: findings %+v, want EXTRA_FILE %v", tt.version, res.Findings, tt.extra)
		}
	}
}

// TestOpenInstallConfig: the apps roots and the data directory as Nextcloud
// reads them: config.php, then config/*.config.php (the official Docker
// image's apps.config.php with OC::$SERVERROOT), an entry without url
// ignored; what cannot be known without PHP is an error naming the file,
// the line and the key, and telling what to set instead.
func TestOpenInstallConfig(t *testing.T) {
	const version = "<?php\n$OC_Version = array(33,0,0,16);\n$OC_VersionString = '33.0.0';\n$OC_Channel = 'stable';\n"
	for _, tt := range []struct {
		name  string
		files map[string]string
		apps  []string // relative to the root
		data  string
		err   string
	}{
		{"none", map[string]string{}, []string{"apps"}, "", ""},
		{"docker", map[string]string{
			"config/config.php":      "<?php\n$CONFIG = array (\n  'datadirectory' => '/var/www/html/data',\n);\n",
			"config/apps.config.php": dockerAppsConfig(t),
		}, []string{"apps", "custom_apps"}, "/var/www/html/data", ""},
		{"later file wins, no url ignored", map[string]string{
			"config/config.php":   "<?php\n$CONFIG = ['apps_paths' => [['path' => \"/srv/a\", 'url' => '/a']]];\n",
			"config/z.config.php": "<?php\n$CONFIG = ['apps_paths' => [['path' => __DIR__ . '/../apps2', 'url' => '/apps2'], ['path' => '/srv/nourl']]];\n",
		}, []string{"config/../apps2"}, "", ""},
		{"getenv", map[string]string{
			"config/config.php": "<?php\n$CONFIG = array(\n  'datadirectory' => getenv('NC_DATA'),\n);\n",
		}, nil, "", `config/config.php:3`},
		{"relative", map[string]string{
			"config/config.php": "<?php\n$CONFIG = array('apps_paths' => array(array('path' => 'apps', 'url' => '/apps')));\n",
		}, nil, "", `"apps" is not an absolute path`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeFile(t, filepath.Join(root, "version.php"), []byte(version))
			for p, c := range tt.files {
				writeFile(t, filepath.Join(root, p), []byte(c))
			}
			in, err := OpenInstall(root, nil, "")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), "integrityd") {
					t.Fatalf("error %v, want one with %q telling what to set in integrityd", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, a := range tt.apps {
				want = append(want, filepath.Clean(filepath.Join(root, a)))
			}
			if !slices.Equal(in.AppsRoots, want) || in.DataDir != tt.data {
				t.Errorf("apps %q data %q, want %q %q", in.AppsRoots, in.DataDir, want, tt.data)
			}
			if in.Version.Major() != 33 {
				t.Errorf("version %+v", in.Version)
			}
		})
	}
}

// TestOpenInstallSymlinkedRoot: --root through a symbolic link (a
// common /var/www/nextcloud -> /srv/nextcloud-29 layout) is the resolved
// path, as OC::$SERVERROOT is, and so are the apps roots pinned through
// the link: the apps are not core's EXTRA_FILEs.
func TestOpenInstallSymlinkedRoot(t *testing.T) {
	real := filepath.Join(t.TempDir(), "nc-33")
	writeFile(t, filepath.Join(real, "version.php"), []byte("<?php\n$OC_Version = array(33,0,0,16);\n"))
	writeFile(t, filepath.Join(real, "custom_apps", "notes", "appinfo", "info.xml"), infoXMLOf("notes", "1.0"))
	link := filepath.Join(t.TempDir(), "nextcloud")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	in, err := OpenInstall(link, []string{filepath.Join(link, "custom_apps")}, "")
	if err != nil {
		t.Fatal(err)
	}
	if in.Root != real || !slices.Equal(in.AppsRoots, []string{filepath.Join(real, "custom_apps")}) {
		t.Errorf("root %s apps %q, want both under %s", in.Root, in.AppsRoots, real)
	}
	if !in.Excluded(filepath.Join(real, "custom_apps")) && !in.IsAppsRoot(filepath.Join(real, "custom_apps")) {
		t.Error("the pinned apps root is not recognised under the resolved root")
	}
}

// dockerAppsConfig is the official Docker image's config/apps.config.php.
func dockerAppsConfig(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../phpconf/testdata/docker/apps.config.php")
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestAppsRootListedTwice: apps_paths naming one directory twice (the same
// path, another spelling, a symbolic link to it) is one apps root: each
// app is one scope, checked once, and no DUPLICATE_APP, as in Nextcloud.
func TestAppsRootListedTwice(t *testing.T) {
	for _, tt := range []struct {
		name   string
		second func(root string) string // the second entry's path
	}{
		{"same path", func(root string) string { return root + "/apps" }},
		{"trailing slash and dot", func(root string) string { return root + "/apps/./" }},
		{"symlink", func(root string) string {
			if err := os.Symlink(filepath.Join(root, "apps"), filepath.Join(root, "apps-link")); err != nil {
				t.Fatal(err)
			}
			return root + "/apps-link"
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := newSignPKI(t)
			root := t.TempDir()
			writeFile(t, filepath.Join(root, "version.php"), []byte("<?php\n$OC_Version = array(33,0,0,16);\n$OC_VersionString = '33.0.0';\n$OC_Channel = 'stable';\n"))
			writeFile(t, filepath.Join(root, "apps", "notes", "appinfo", "info.xml"), infoXMLOf("notes", "4.9.1"))
			writeFile(t, filepath.Join(root, "apps", "notes", "lib", "a.php"), []byte("<?php"))
			cfg := fmt.Sprintf("<?php\n$CONFIG = ['apps_paths' => [['path' => %q, 'url' => '/apps'], ['path' => %q, 'url' => '/apps2']]];\n", root+"/apps", tt.second(root))
			writeFile(t, filepath.Join(root, "config", "config.php"), []byte(cfg))
			in, err := OpenInstall(root, nil, "")
			if err != nil {
				t.Fatal(err)
			}
			p.sign(t, in.App("notes", filepath.Join(root, "apps", "notes")))
			scopes, _, err := in.Apps()
			if err != nil {
				t.Fatal(err)
			}
			if len(scopes) != 1 || scopes[0].Name != "notes" {
				var names []string
				for _, s := range scopes {
					names = append(names, s.Name)
				}
				t.Fatalf("scopes %q (apps roots %q), want notes once", names, in.AppsRoots)
			}
			res, err := scopes[0].Check(context.Background(), p.trust)
			if err != nil {
				t.Fatal(err)
			}
			if res.Exception != nil || len(res.Findings) != 0 {
				t.Errorf("notes: %+v %+v, want clean (no DUPLICATE_APP)", res.Exception, res.Findings)
			}
		})
	}
}
