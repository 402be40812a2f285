package main

// TestOracle is the differential test against Nextcloud's own Checker: for
// each case and each release the oracle carries (25.0.12, 33.0.0), a tree
// is built and signed with a test CA (the project's own signing), then
// checked by Nextcloud's real IntegrityCheck\Checker of that release
// (/work/shared/nextcloud-oracle, php-cli) and by integrityd in-process
// (check --output json); both results are parsed as JSON trees, scope →
// kind → path → {expected, current} or EXCEPTION → {class, message}, and
// must be equal (kinds and messages compared exactly, order ignored).
//
// Each case has a group, needs:
//   - "": what integrityd does today; must pass.
//   - "phpconf", "appinfo", "mimetype", "version-exclusions",
//     "exception-format": features being built on main (a group "found"
//     can hold differences the test finds until they are fixed or
//     documented). While a group is
//     not in oracleEnabledNeeds its cases run, a difference is a skip that
//     shows the first differing line, and when every case of the group
//     passes the test fails asking to enable it; once enabled, a
//     difference is an error.
//
// A case with differ set is a documented deliberate difference: it asserts
// the difference itself (what Nextcloud misses or how it fails, what
// integrityd reports instead).
//
// TestOracleUnreadable (unreadable file and directory) runs as uid 65534
// (internal/asnobody) since root reads everything.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/integrityd/integrityd/internal/asnobody"
	"github.com/integrityd/integrityd/internal/demo"
	"github.com/integrityd/integrityd/internal/oracledir"
	"github.com/integrityd/integrityd/internal/verify"
)

// oracleEnabledNeeds lists the groups of cases (oracleCase.needs) that
// must pass, comma-separated: add a group when the feature it needs lands
// on main. INTEGRITYD_ORACLE_NEEDS (comma-separated, or "all") adds groups
// for one run.
const oracleEnabledNeeds = "exception-format,appinfo,version-exclusions,mimetype,phpconf"

// oracleCase is one tree, checked by both.
type oracleCase struct {
	name string
	// needs names the feature group the case waits for ("" = works today).
	needs string
	// build changes the signed base tree (see newNCTree).
	build func(tr *ncTree)
	// nextcloud, when set, replaces the plain oracle run (mode all), e.g.
	// to check one app at the path real Nextcloud would choose.
	nextcloud func(tr *ncTree) results
	// differ, for a documented difference, checks that difference and
	// returns what is wrong ("" when it holds); nil requires equality.
	differ func(tr *ncTree, nc, idd results) string
}

func TestOracle(t *testing.T) {
	orc := findOracle(t)
	keys := newOracleKeys(t)
	enabled := enabledNeeds()
	var mu sync.Mutex
	var php time.Duration
	runs := 0
	groups := map[string][2]int{} // needs → {passed, failed}
	start := time.Now()
	t.Cleanup(func() {
		t.Logf("%d runs (cases × releases) in %.1f s; the oracle's PHP ran %.1f s in all, in parallel", runs, time.Since(start).Seconds(), php.Seconds())
		for g, n := range groups {
			switch {
			case g == "" || enabled[g] || enabled["all"]:
			case n[1] == 0:
				t.Errorf("every case that needs %q passes now (%d): add %q to oracleEnabledNeeds", g, n[0], g)
			default:
				t.Logf("needs %q: %d of %d pass", g, n[0], n[0]+n[1])
			}
		}
	})
	rels := orc.releases(t)
	for _, c := range oracleCases() {
		for _, rel := range rels {
			t.Run(c.name+"/"+rel, func(t *testing.T) {
				t.Parallel()
				tr := newNCTree(t, orc, rel, keys)
				if c.build != nil {
					c.build(tr)
				}
				t0 := time.Now()
				var nc results
				if c.nextcloud != nil {
					nc = c.nextcloud(tr)
				} else {
					nc = tr.nextcloud("all")
				}
				d := time.Since(t0)
				if q := nextcloudQuiet(c.name, rel); c.differ == nil && q != (len(nc) == 0) {
					t.Errorf("the tree is not what the case says: Nextcloud was expected to report %s, reports %s", map[bool]string{true: "nothing", false: "something"}[q], nc)
				}
				idd := tr.integrityd()
				var problem string
				if c.differ != nil {
					problem = c.differ(tr, nc, idd)
					t.Logf("documented difference\nnextcloud: %s\nintegrityd: %s", nc, idd)
				} else if d := diffResults(nc, idd, func([]string) bool { return false }); len(d) > 0 {
					problem = fmt.Sprintf("%d difference(s) (scope kind path field):\n  %s", len(d), strings.Join(d, "\n  "))
				}
				mu.Lock()
				php += d
				runs++
				n := groups[c.needs]
				if problem == "" {
					n[0]++
				} else {
					n[1]++
				}
				groups[c.needs] = n
				mu.Unlock()
				verdict(t, c.needs, enabled, problem, nc, idd)
			})
		}
	}
}

// nextcloudQuiet reports whether Nextcloud reports nothing for the case in
// release rel: a check of each tree, so that no case passes because both
// checkers saw nothing of what it built.
func nextcloudQuiet(name, rel string) bool {
	switch name {
	case "clean", "htaccess-below-marker", "cert-core-for-app", "cert-expired", "cert-not-yet-valid",
		"app-unsigned-not-shipped", "manifest-lenient-encodings", "manifest-depth-511",
		"manifest-duplicate-key-last-wins", "php-sort-names", "symlink-replaces-signed-file",
		"symlink-dir-extra", "datadirectory-trailing-slash", "datadirectory-nested",
		"mimetypelist-custom-not-regenerated", "updater-in-manifest", "manifest-resigned",
		"root-crt-two-cas", "cert-intermediate-in-root-crt", "cert-sha1-signed",
		"datadirectory-other-config", "app-without-info-xml", "mimetypelist-custom-aliases",
		"datadirectory-expression":
		return true
	case "init-sync-lock":
		return rel != "25.0.12"
	}
	return false
}

// verdict fails, skips or passes a case by its group.
func verdict(t *testing.T, needs string, enabled map[string]bool, problem string, nc, idd results) {
	t.Helper()
	on := needs == "" || enabled[needs] || enabled["all"]
	switch {
	case problem == "" && on:
	case problem == "":
		t.Logf("needs %q, which is not enabled, but passes now", needs)
	case on:
		t.Errorf("%s\nnextcloud: %s\nintegrityd: %s", problem, nc, idd)
	default:
		first, _, _ := strings.Cut(strings.TrimSpace(problem[strings.Index(problem, "\n")+1:]), "\n")
		t.Skipf("needs %q (not enabled in oracleEnabledNeeds); differs today: %s", needs, first)
	}
}

func enabledNeeds() map[string]bool {
	m := map[string]bool{}
	for _, s := range strings.Split(oracleEnabledNeeds+","+os.Getenv("INTEGRITYD_ORACLE_NEEDS"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			m[s] = true
		}
	}
	return m
}

// ---------------------------------------------------------------------------
// The cases. Each comment says what Nextcloud reports.

func oracleCases() []oracleCase {
	var all []oracleCase
	for _, cs := range [][]oracleCase{casesToday(), casesTodayMore(), casesExceptionFormat(), casesBuilding(), casesCerts(), casesManifestOdd(), casesDifferent()} {
		all = append(all, cs...)
	}
	return all
}

// casesToday: integrityd must agree today.
func casesToday() []oracleCase {
	return []oracleCase{
		// Nextcloud: {} (nothing).
		{name: "clean"},
		// core INVALID_HASH lib/base.php.
		{name: "invalid-hash-core", build: func(tr *ncTree) { tr.write("lib/base.php", "<?php\n// changed\n") }},
		// files INVALID_HASH lib/App.php.
		{name: "invalid-hash-app", build: func(tr *ncTree) { tr.write("apps/files/lib/App.php", "<?php\neval($_GET['x']);\n") }},
		// core FILE_MISSING core/css/server.css.
		{name: "file-missing-core", build: func(tr *ncTree) { tr.remove("core/css/server.css") }},
		// dashboard FILE_MISSING js/dashboard.js.
		{name: "file-missing-app", build: func(tr *ncTree) { tr.remove("apps/dashboard/js/dashboard.js") }},
		// core EXTRA_FILE lib/backdoor.php (expected "", current its hash).
		{name: "extra-file-core", build: func(tr *ncTree) { tr.write("lib/backdoor.php", "<?php system($_GET['c']);\n") }},
		// files EXTRA_FILE js/evil.js; mytool (not shipped, signed) EXTRA_FILE lib/evil.php.
		{name: "extra-file-app", build: func(tr *ncTree) {
			tr.write("apps/files/js/evil.js", "fetch('//evil')\n")
			tr.write("apps/mytool/lib/evil.php", "<?php\n")
		}},
		// Every kind at once: core INVALID_HASH index.php, FILE_MISSING
		// status.php, EXTRA_FILE lib/x.php; files INVALID_HASH, FILE_MISSING,
		// EXTRA_FILE; dashboard EXCEPTION "Signature data not found."; mytool
		// EXTRA_FILE.
		{name: "every-kind", build: func(tr *ncTree) {
			tr.write("index.php", "<?php\n// changed\n")
			tr.remove("status.php")
			tr.write("lib/x.php", "<?php\n")
			tr.write("apps/files/lib/App.php", "<?php\n// changed\n")
			tr.remove("apps/files/js/files.js")
			tr.write("apps/files/x.php", "<?php\n")
			tr.remove("apps/dashboard/appinfo/signature.json")
			tr.write("apps/mytool/y.php", "<?php // y\n")
		}},
		// Directories Nextcloud's ExcludeFoldersByPathFilterIterator skips
		// (both releases: ROOT/data, themes, config, apps, assets,
		// lost+found, updater, _oc_upgrade, every apps root, the
		// datadirectory of config.php): nothing. The same names deeper
		// (lib/data, apps/files/config) are not skipped: EXTRA_FILE.
		{name: "excluded-dirs", build: func(tr *ncTree) {
			tr.write("config/config.php", fmt.Sprintf("<?php\n$CONFIG = array (\n  'instanceid' => 'oracle',\n  'datadirectory' => '%s/mydata',\n);\n", tr.root))
			for _, p := range []string{"data/admin/files/x.php", "themes/mytheme/core/css/x.css", "config/extra.config.php",
				"assets/x.js", "lost+found/#123", "updater/index.php", "_oc_upgrade/x.php", "apps/stray.php", "mydata/u/files/y.txt"} {
				tr.write(p, "<?php\n")
			}
			tr.write("lib/data/x.php", "<?php // lib/data\n")
			tr.write("core/assets/x.js", "// core/assets\n")
			tr.write("apps/files/config/x.php", "<?php // app config\n")
			tr.write("apps/files/data/x.txt", "app data\n")
		}},
		// ExcludeFileByNameFilterIterator's names, in core, deeper and in
		// an app: nothing; a directory with such a name is walked
		// (core/.rnd/inside.txt: EXTRA_FILE), near misses are EXTRA_FILE; the
		// .webapp pattern's $ also matches before a final newline. Files
		// named appinfo/signature.json in core and core/signature.json in
		// an app are skipped (generateHashes skips both keys in every
		// scope).
		{name: "excluded-names", build: func(tr *ncTree) {
			for _, d := range []string{"", "lib/", "apps/files/js/"} {
				for _, n := range []string{".DS_Store", "Thumbs.db", ".directory", ".webapp", ".rnd",
					".webapp-nextcloud-25.0.12", ".webapp-nextcloud-1.2.3-r4", ".webapp-nextcloud-1.2.3\n"} {
					tr.write(d+n, d+n+"\n") // contents differ: Nextcloud keeps one of equal hashes
				}
			}
			tr.write("core/.rnd/inside.txt", "in a directory named .rnd\n")
			tr.write("Thumbs.db.bak", "near miss 1\n")
			tr.write("lib/.webapp-nextcloud-1.2", "near miss 2\n")
			tr.write("lib/.webapp-nextcloud-1.2.3\n\n", "two newlines\n")
			tr.write("appinfo/signature.json", "{}")
			tr.write("apps/files/core/signature.json", "{}")
		}},
		// Root .htaccess: only what is above the first marker is hashed:
		// nothing.
		{name: "htaccess-below-marker", build: func(tr *ncTree) {
			tr.write(".htaccess", tr.read(".htaccess")+"\nErrorDocument 403 /evil.php\nphp_value auto_prepend_file /tmp/x\n")
		}},
		// core INVALID_HASH .htaccess, current = hash of the new part above
		// the marker.
		{name: "htaccess-above-marker", build: func(tr *ncTree) {
			tr.write(".htaccess", "php_value auto_prepend_file /tmp/x\n"+tr.read(".htaccess"))
		}},
		// A second marker: explode gives 3 parts, the whole file is
		// hashed: core INVALID_HASH .htaccess.
		{name: "htaccess-two-markers", build: func(tr *ncTree) {
			tr.write(".htaccess", tr.read(".htaccess")+"\n#### DO NOT CHANGE ANYTHING ABOVE THIS LINE ####\n")
		}},
		// No marker: the whole file: core INVALID_HASH .htaccess.
		{name: "htaccess-no-marker", build: func(tr *ncTree) {
			tr.write(".htaccess", strings.Replace(tr.read(".htaccess"), "#### DO NOT CHANGE ANYTHING ABOVE THIS LINE ####\n", "", 1))
		}},
		// The marker rule is for ROOT/.htaccess only: files INVALID_HASH
		// .htaccess, core INVALID_HASH lib/.htaccess.
		{name: "htaccess-elsewhere", build: func(tr *ncTree) {
			tr.write("apps/files/.htaccess", tr.read("apps/files/.htaccess")+"changed below\n")
			tr.write("lib/.htaccess", tr.read("lib/.htaccess")+"changed below\n")
		}},
		// .user.ini has no rule of its own: core INVALID_HASH .user.ini.
		{name: "user-ini", build: func(tr *ncTree) { tr.write(".user.ini", tr.read(".user.ini")+"auto_prepend_file=/tmp/x\n") }},
		// A hash changed in the manifest: files EXCEPTION
		// InvalidSignatureException "Signature could not get verified.".
		{name: "manifest-hash-tampered", build: func(tr *ncTree) {
			m := "apps/files/appinfo/signature.json"
			h := hashOf(tr.read("apps/files/lib/App.php"))
			tr.write(m, strings.Replace(tr.read(m), h, hashOf("other"), 1))
		}},
		// The signature changed: core EXCEPTION "Signature could not get verified.".
		{name: "manifest-signature-tampered", build: func(tr *ncTree) {
			tr.editManifestField("core/signature.json", "signature", func(s string) string {
				b := []byte(s)
				b[10] ^= 'A' ^ 'B'
				if b[10] == s[10] {
					b[10] = 'C'
				}
				return string(b)
			})
		}},
		// A shipped app without signature.json: dashboard EXCEPTION
		// "Signature data not found.".
		{name: "manifest-missing-shipped", build: func(tr *ncTree) { tr.remove("apps/dashboard/appinfo/signature.json") }},
		// core without core/signature.json: core EXCEPTION "Signature data not found.".
		{name: "manifest-missing-core", build: func(tr *ncTree) { tr.remove("core/signature.json") }},
		// mytool signed with the certificate of files: mytool EXCEPTION
		// "Certificate is not valid for required scope. (Requested: mytool,
		// current: CN=files)". (Neither release has an "App ID does not
		// match" message: this is the CN check's.)
		{name: "cert-other-cn", build: func(tr *ncTree) { tr.signAppWith("mytool", tr.keys.leaf["files"], verify.DigestSHA1) }},
		// CN=core is trusted for every scope: nothing.
		{name: "cert-core-for-app", build: func(tr *ncTree) { tr.signAppWith("files", tr.keys.leaf["core"], verify.DigestSHA1) }},
		// Not JSON, a JSON string, an empty file: EXCEPTION "Signature data
		// not found." for files, dashboard and mytool.
		{name: "manifest-invalid-json", build: func(tr *ncTree) {
			tr.write("apps/files/appinfo/signature.json", "{not json")
			tr.write("apps/dashboard/appinfo/signature.json", `"a string"`)
			tr.write("apps/mytool/appinfo/signature.json", "")
		}},
		// Signed by a CA that root.crt does not hold: files EXCEPTION
		// "Certificate is not valid.".
		{name: "cert-untrusted-ca", build: func(tr *ncTree) { tr.signAppWith("files", tr.keys.otherCA, verify.DigestSHA1) }},
		// phpseclib's validateSignature ignores the validity dates: an
		// expired and a not yet valid certificate verify: nothing.
		{name: "cert-expired", build: func(tr *ncTree) { tr.signAppWith("files", tr.keys.expired, verify.DigestSHA1) }},
		{name: "cert-not-yet-valid", build: func(tr *ncTree) { tr.signAppWith("files", tr.keys.notYet, verify.DigestSHA1) }},
		// An app neither shipped nor signed is not checked, whatever is in
		// it: nothing.
		{name: "app-unsigned-not-shipped", build: func(tr *ncTree) {
			tr.write("apps/thirdparty/appinfo/info.xml", infoXML("thirdparty", "1.0.0"))
			tr.write("apps/thirdparty/lib/Anything.php", "<?php system($_GET['c']);\n")
		}},
		// core/js/mimetypelist.js edited by hand (not what the builder
		// makes from the aliases): core INVALID_HASH core/js/mimetypelist.js.
		{name: "mimetypelist-edited", build: func(tr *ncTree) {
			tr.mimetypeTree()
			tr.write("core/js/mimetypelist.js", tr.read("core/js/mimetypelist.js")+"alert(1);\n")
		}},
		// The signature field holds characters outside base64 (PHP's
		// base64_decode skips them) and the certificate has LF lines
		// (phpseclib reads any PEM): nothing.
		{name: "manifest-lenient-encodings", build: func(tr *ncTree) {
			tr.editManifestField("apps/files/appinfo/signature.json", "signature", func(s string) string { return s[:20] + "!\n*" + s[20:] })
			tr.editManifestField("apps/dashboard/appinfo/signature.json", "certificate", func(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") })
		}},
	}
}

// casesExceptionFormat: manifests Nextcloud rejects (or accepts) for
// reasons of JSON and certificate format; integrityd's EXCEPTION must be
// exactly Nextcloud's {class, message}.
func casesExceptionFormat() []oracleCase {
	const ef = "exception-format"
	m := "apps/files/appinfo/signature.json"
	return []oracleCase{
		// A UTF-8 byte order mark: json_decode fails: files EXCEPTION
		// "Signature data not found.".
		{name: "manifest-bom", needs: ef, build: func(tr *ncTree) { tr.write(m, "\xef\xbb\xbf"+tr.read(m)) }},
		// Text after the object: "Signature data not found.".
		{name: "manifest-trailing", needs: ef, build: func(tr *ncTree) { tr.write(m, tr.read(m)+"\n}") }},
		// json_decode's default depth is 512: a document nesting 511 levels
		// decodes (nothing), 512 do not ("Signature data not found.").
		{name: "manifest-depth-511", needs: ef, build: func(tr *ncTree) { tr.write(m, nestInto(tr.read(m), 510)) }},
		{name: "manifest-depth-512", needs: ef, build: func(tr *ncTree) { tr.write(m, nestInto(tr.read(m), 511)) }},
		// Invalid UTF-8 in a string, or a lone surrogate escape: json_decode
		// fails: "Signature data not found.".
		{name: "manifest-bad-utf8", needs: ef, build: func(tr *ncTree) { tr.write(m, "{\"x\": \"\xff\","+tr.read(m)[1:]) }},
		{name: "manifest-lone-surrogate", needs: ef, build: func(tr *ncTree) { tr.write(m, `{"x": "\ud800",`+tr.read(m)[1:]) }},
		// A duplicate "hashes" key: PHP keeps the last. Fake first, real
		// last: nothing. Real first, fake last: "Signature could not get
		// verified.".
		{name: "manifest-duplicate-key-last-wins", needs: ef, build: func(tr *ncTree) {
			tr.write(m, `{"hashes": {"x": "y"},`+tr.read(m)[1:])
		}},
		{name: "manifest-duplicate-key-fake-last", needs: ef, build: func(tr *ncTree) {
			s := tr.read(m)
			tr.write(m, s[:len(s)-1]+`, "hashes": {"x": "y"}}`)
		}},
		// The fields present but empty: loadX509("") fails: "Certificate is
		// not valid.". A certificate that is not PEM: the same.
		{name: "manifest-empty-fields", needs: ef, build: func(tr *ncTree) {
			tr.write(m, `{"hashes": {}, "signature": "", "certificate": ""}`)
		}},
		{name: "manifest-garbage-cert", needs: ef, build: func(tr *ncTree) {
			tr.editManifestField(m, "certificate", func(string) string { return "not a certificate" })
		}},
		// The manifest is a directory: file_get_contents reads "" (PHP 8):
		// "Signature data not found.".
		{name: "manifest-is-directory", needs: ef, build: func(tr *ncTree) {
			tr.remove(m)
			tr.mkdir(m)
		}},
		// The manifest is a symbolic link to a valid manifest: PHP follows
		// it, and the file it points to is an extra file of the app: files
		// EXTRA_FILE appinfo/real-signature.json.
		{name: "manifest-symlink", needs: ef, build: func(tr *ncTree) {
			tr.rename(m, "apps/files/appinfo/real-signature.json")
			tr.symlink("real-signature.json", m)
		}},
	}
}

// casesBuilding: the cases of the features issue 9 added (real installs),
// by group (needs).
func casesBuilding() []oracleCase {
	return []oracleCase{
		// The nextcloud/docker layout: config/apps.config.php declares
		// apps and custom_apps (OC::$SERVERROOT . '/...'); Nextcloud reads
		// every config/*.config.php. notes in custom_apps is checked (notes
		// INVALID_HASH lib/Note.php) and custom_apps is not core's: core
		// has nothing.
		{name: "docker-layout", needs: "phpconf", build: func(tr *ncTree) {
			tr.write("config/config.php", "<?php\n$CONFIG = array (\n  'instanceid' => 'docker',\n);\n")
			// the image's own file (internal/phpconf/testdata/docker)
			apps, err := os.ReadFile("../../internal/phpconf/testdata/docker/apps.config.php")
			if err != nil {
				tr.t.Fatal(err)
			}
			tr.write("config/apps.config.php", string(apps))
			tr.app("custom_apps", "notes", "4.0.0")
			tr.write("custom_apps/notes/lib/Note.php", "<?php // changed\n")
		}},
		// Double-quoted strings: the same as single-quoted. apps2/notes is
		// checked, apps2 is not core's: notes INVALID_HASH lib/Note.php.
		{name: "apps-paths-double-quoted", needs: "phpconf", build: func(tr *ncTree) {
			tr.write("config/config.php", `<?php
$CONFIG = array (
  "instanceid" => "dq",
  "apps_paths" => array (
    array ("path" => OC::$SERVERROOT . "/apps", "url" => "/apps", "writable" => false),
    array ("path" => OC::$SERVERROOT . "/apps2", "url" => "/apps2", "writable" => true),
  ),
);
`)
			tr.app("apps2", "notes", "4.0.0")
			tr.write("apps2/notes/lib/Note.php", "<?php // changed\n")
		}},
		// __DIR__ . '/../apps2': the path is ROOT/config/../apps2, as
		// written: lib/base.php does not normalise it, so the Checker's
		// folder exclusion (string equality with the iterator's path
		// ROOT/apps2) does not exclude apps2 from core: core EXTRA_FILE for
		// every file of apps2/notes, and notes INVALID_HASH lib/Note.php.
		// integrityd normalises the path (docs/security.md): the same
		// without core's EXTRA_FILEs.
		{name: "apps-paths-dir-relative", needs: "phpconf", build: func(tr *ncTree) {
			tr.write("config/config.php", `<?php
$CONFIG = [
  'instanceid' => 'dir',
  'apps_paths' => [
    ['path' => __DIR__ . '/../apps', 'url' => '/apps', 'writable' => false],
    ['path' => __DIR__ . '/../apps2', 'url' => '/apps2', 'writable' => true],
  ],
];
`)
			tr.app("apps2", "notes", "4.0.0")
			tr.write("apps2/notes/lib/Note.php", "<?php // changed\n")
		}, differ: func(tr *ncTree, nc, idd results) string {
			extra := nc.paths("core", "EXTRA_FILE")
			if len(extra) != 4 || !strings.HasPrefix(extra[0], "apps2/notes/") {
				return fmt.Sprintf("Nextcloud was expected to report apps2/notes' files as core EXTRA_FILEs, reports %s", nc)
			}
			return equalOrDiff(nc.withoutScope("core"), idd)
		}},
		// An apps_paths entry without url is ignored: custom_apps is not an
		// apps root, its files are core EXTRA_FILEs and notes is not
		// checked.
		{name: "apps-paths-no-url", needs: "phpconf", build: func(tr *ncTree) {
			tr.write("config/config.php", fmt.Sprintf(`<?php
$CONFIG = array (
  'apps_paths' => array (
    array ('path' => '%[1]s/apps', 'url' => '/apps', 'writable' => false),
    array ('path' => '%[1]s/custom_apps', 'writable' => true),
  ),
);
`, tr.root))
			tr.app("custom_apps", "notes", "4.0.0")
		}},
		// datadirectory set in another config/*.config.php: excluded from
		// core: nothing.
		{name: "datadirectory-other-config", needs: "phpconf", build: func(tr *ncTree) {
			tr.write("config/storage.config.php", fmt.Sprintf("<?php\n$CONFIG = array('datadirectory' => '%s/mydata');\n", tr.root))
			tr.write("mydata/admin/files/a.txt", "user data\n")
		}},
		// apps_paths in config.php ([apps]) and again in apps.config.php
		// ([apps, custom_apps]): \OC\Config merges the files in order, the
		// later key replaces the earlier: custom_apps is an apps root:
		// notes INVALID_HASH lib/Note.php, nothing in core.
		{name: "apps-paths-overridden", needs: "phpconf", build: func(tr *ncTree) {
			tr.write("config/config.php", fmt.Sprintf("<?php\n$CONFIG = array (\n  'apps_paths' => array (\n    array ('path' => '%s/apps', 'url' => '/apps', 'writable' => false),\n  ),\n);\n", tr.root))
			tr.write("config/apps.config.php", `<?php
$CONFIG = array (
  'apps_paths' => array (
    array ('path' => OC::$SERVERROOT . '/apps', 'url' => '/apps', 'writable' => false),
    array ('path' => OC::$SERVERROOT . '/custom_apps', 'url' => '/custom_apps', 'writable' => true),
  ),
);
`)
			tr.app("custom_apps", "notes", "4.0.0")
			tr.write("custom_apps/notes/lib/Note.php", "<?php // changed\n")
		}},
		// config.php lists three apps roots, the official image's
		// apps.config.php two (entries 0 and 1). 25 (array_merge): the
		// image's apps_paths replaces config.php's, extra_apps is no apps
		// root: its files are core EXTRA_FILEs. 33 (array_replace_recursive):
		// entry 2 survives, extra_apps/notes is checked: notes
		// INVALID_HASH lib/Note.php, nothing in core.
		{name: "apps-paths-third-root", needs: "phpconf", build: func(tr *ncTree) {
			tr.write("config/config.php", fmt.Sprintf(`<?php
$CONFIG = array (
  'apps_paths' => array (
    0 => array ('path' => '%[1]s/apps', 'url' => '/apps', 'writable' => false),
    1 => array ('path' => '%[1]s/custom_apps', 'url' => '/custom_apps', 'writable' => true),
    2 => array ('path' => '%[1]s/extra_apps', 'url' => '/extra_apps', 'writable' => false),
  ),
);
`, tr.root))
			apps, err := os.ReadFile("../../internal/phpconf/testdata/docker/apps.config.php")
			if err != nil {
				tr.t.Fatal(err)
			}
			tr.write("config/apps.config.php", string(apps))
			tr.app("extra_apps", "notes", "4.0.0")
			tr.write("extra_apps/notes/lib/Note.php", "<?php // changed\n")
		}},
		// apps_paths naming apps twice: Nextcloud checks each app once
		// (getAllApps keeps each id once): files INVALID_HASH once, no
		// DUPLICATE_APP.
		{name: "apps-paths-twice", needs: "phpconf", build: func(tr *ncTree) {
			tr.write("config/config.php", fmt.Sprintf(`<?php
$CONFIG = array (
  'apps_paths' => array (
    array ('path' => '%[1]s/apps', 'url' => '/apps', 'writable' => false),
    array ('path' => '%[1]s/apps', 'url' => '/apps2', 'writable' => true),
  ),
);
`, tr.root))
			tr.write("apps/files/js/files.js", "// changed\n")
		}},
		// A config file that includes config.php and reassigns $CONFIG
		// under an if whose branches cannot set apps_paths: apps_paths is
		// config.php's either way (apps, apps2): notes INVALID_HASH.
		{name: "config-if-reassign", needs: "phpconf", build: func(tr *ncTree) {
			tr.write("config/config.php", fmt.Sprintf(`<?php
$CONFIG = array (
  'apps_paths' => array (
    array ('path' => '%[1]s/apps', 'url' => '/apps', 'writable' => false),
    array ('path' => '%[1]s/apps2', 'url' => '/apps2', 'writable' => true),
  ),
);
`, tr.root))
			tr.write("config/zz-debug.config.php", `<?php
include __DIR__ . '/config.php';
if (PHP_SAPI === 'cli') {
  $CONFIG['loglevel'] = 0;
} else {
  $CONFIG = array('loglevel' => 2);
}
`)
			tr.app("apps2", "notes", "4.0.0")
			tr.write("apps2/notes/lib/Note.php", "<?php // changed\n")
		}},
		// datadirectory as an expression (OC::$SERVERROOT . '/mydata'):
		// excluded from core: nothing.
		{name: "datadirectory-expression", needs: "phpconf", build: func(tr *ncTree) {
			tr.write("config/config.php", "<?php\n$CONFIG = array (\n  'datadirectory' => OC::$SERVERROOT . '/mydata',\n);\n")
			tr.write("mydata/admin/files/a.txt", "user data\n")
		}},
		// A directory in the apps root without appinfo/info.xml is no app
		// (getAllApps): not checked even with a shipped id (comments) or a
		// signature.json (leftover, whose files are changed): nothing.
		// (integrityd before main's a35a7a8: comments EXCEPTION "Signature
		// data not found.", leftover FILE_MISSING appinfo/info.xml.)
		{name: "app-without-info-xml", needs: "appinfo", build: func(tr *ncTree) {
			tr.write("apps/comments/lib/Comments.php", "<?php\n")
			tr.app("apps", "leftover", "1.0.0")
			tr.remove("apps/leftover/appinfo/info.xml")
			tr.write("apps/leftover/lib/Leftover.php", "<?php // changed\n")
		}},
		// notes in apps (version 4.0.0) and in custom_apps (3.0.0, with a
		// changed file). Real Nextcloud takes the copy with the highest
		// <version> (OC_App::findAppInDirectories, version_compare; the
		// first on a tie); the oracle's stub takes the first root. Here the
		// first root holds the highest version, so both agree: notes is
		// checked in apps/notes: nothing. integrityd also checks the other
		// copy and marks both (see duplicateDiffer).
		{name: "duplicate-app-first-newer", needs: "appinfo", build: func(tr *ncTree) {
			tr.duplicateNotes("4.0.0", "3.0.0")
		}, differ: duplicateDiffer("custom_apps")},
		// The same with the highest version in the second root: real
		// Nextcloud checks custom_apps/notes (notes INVALID_HASH
		// lib/Note.php). The oracle's own lookup would take apps/notes, so
		// notes' result is the oracle's check of custom_apps/notes (mode
		// app notes PATH, as occ integrity:check-app --path); the other
		// scopes come from the full run.
		{name: "duplicate-app-second-newer", needs: "appinfo", build: func(tr *ncTree) {
			tr.duplicateNotes("3.0.0", "4.0.0")
		}, nextcloud: secondCopyNextcloud, differ: duplicateDiffer("apps")},
		// version_compare's order: a tie keeps the first root; 1.10.0 >
		// 1.9.0; 2.0.0 > 2.0.0-beta (a special form after the last part
		// sorts lower); 2.0.0 > 2.0 (a number after the last part sorts
		// higher).
		{name: "duplicate-app-same-version", needs: "appinfo", build: func(tr *ncTree) {
			tr.duplicateNotes("4.0.0", "4.0.0")
		}, differ: duplicateDiffer("custom_apps")},
		{name: "duplicate-app-1.10-after-1.9", needs: "appinfo", build: func(tr *ncTree) {
			tr.duplicateNotes("1.9.0", "1.10.0")
		}, nextcloud: secondCopyNextcloud, differ: duplicateDiffer("apps")},
		{name: "duplicate-app-beta-before-release", needs: "appinfo", build: func(tr *ncTree) {
			tr.duplicateNotes("2.0.0-beta", "2.0.0")
		}, nextcloud: secondCopyNextcloud, differ: duplicateDiffer("apps")},
		{name: "duplicate-app-2.0-before-2.0.0", needs: "appinfo", build: func(tr *ncTree) {
			tr.duplicateNotes("2.0", "2.0.0")
		}, nextcloud: secondCopyNextcloud, differ: duplicateDiffer("apps")},
		{name: "duplicate-app-release-after-beta", needs: "appinfo", build: func(tr *ncTree) {
			tr.duplicateNotes("2.0.0", "2.0.0-beta")
		}, differ: duplicateDiffer("custom_apps")},
		// config/mimetypealiases.json adds aliases and core/js/mimetypelist.js
		// was regenerated (occ maintenance:mimetype:update-js): the Checker
		// rebuilds the file from all aliases, finds it equal, and hashes
		// the build from the default aliases: nothing.
		{name: "mimetypelist-custom-aliases", needs: "mimetype", build: func(tr *ncTree) {
			tr.mimetypeTree()
			tr.write("config/mimetypealiases.json", "{\n\t\"application/x-custom\": \"text\",\n\t\"text/markdown\": \"text/code\"\n}\n")
			tr.write("core/js/mimetypelist.js", tr.mimetypeList("all"))
		}},
		// core/js/mimetypelist.js present, core/img/filetypes absent (or
		// themes/): the builder's DirectoryIterator throws and
		// verifyCoreSignature catches it: core is one EXCEPTION
		// UnexpectedValueException "DirectoryIterator::__construct(ROOT/
		// core/img/filetypes): Failed to open directory: No such file or
		// directory". integrityd (deliberately, tree.go: "integrityd
		// reports this file") makes it a ReadException of
		// core/js/mimetypelist.js and checks the rest of core (the icons:
		// FILE_MISSING).
		{name: "mimetypelist-no-filetypes-dir", needs: "mimetype", build: func(tr *ncTree) {
			tr.mimetypeTree()
			if err := os.RemoveAll(tr.path("core/img/filetypes")); err != nil {
				tr.t.Fatal(err)
			}
		}, differ: mimetypeDirDiffer("core/img/filetypes")},
		{name: "mimetypelist-no-themes-dir", needs: "mimetype", build: func(tr *ncTree) {
			tr.mimetypeTree()
			if err := os.RemoveAll(tr.path("themes")); err != nil {
				tr.t.Fatal(err)
			}
		}, differ: mimetypeDirDiffer("themes/")},
		// nextcloud-init-sync.lock is in 33's ExcludeFileByNameFilterIterator,
		// not in 25's (the only name the two lists differ by; the folder
		// lists are the same): 25: core EXTRA_FILE nextcloud-init-sync.lock
		// and lib/nextcloud-init-sync.lock, files EXTRA_FILE
		// nextcloud-init-sync.lock; 33: nothing.
		{name: "init-sync-lock", needs: "version-exclusions", build: func(tr *ncTree) {
			tr.write("nextcloud-init-sync.lock", "")
			tr.write("lib/nextcloud-init-sync.lock", "1\n")
			tr.write("apps/files/nextcloud-init-sync.lock", "2\n")
		}},
		// A manifest signed with a SHA-256 PSS message digest (phpseclib
		// 3's default; signed by openssl): no release verifies it, every
		// one up to 34.0.2 ships phpseclib 2 (SHA-1): files EXCEPTION
		// "Signature could not get verified.".
		{name: "sha256-digest", build: func(tr *ncTree) { tr.resignSHA256("files") }},
		// The same in a tree whose version.php is 34.0.1's: 34.0.1 ships
		// phpseclib 2.0.54 (nextcloud/3rdparty composer.lock at v34.0.1),
		// whose RSA verify is 33's; integrityd once took 34 for phpseclib
		// 3 and accepted the signature there.
		{name: "sha256-digest-34.0.1", build: func(tr *ncTree) {
			tr.useVersion("34.0.1")
			tr.resignSHA256("files")
		}},
		// A certificate with an EC key (signed by the test CA, CN=files):
		// phpseclib 2's RSA::loadKey fails and verify returns false: files
		// EXCEPTION "Signature could not get verified.", in every release.
		{name: "ec-key-cert", build: func(tr *ncTree) {
			tr.editManifestField("apps/files/appinfo/signature.json", "certificate", func(string) string { return string(tr.keys.ec) })
		}},
		{name: "ec-key-cert-34.0.1", build: func(tr *ncTree) {
			tr.useVersion("34.0.1")
			tr.editManifestField("apps/files/appinfo/signature.json", "certificate", func(string) string { return string(tr.keys.ec) })
		}},
		// A certificate the root signed with RSA-PSS: phpseclib 2's
		// validateSignature refuses it: files EXCEPTION "Certificate is not
		// valid.", 34.0.1 too.
		{name: "cert-pss-signed-34.0.1", build: func(tr *ncTree) {
			tr.useVersion("34.0.1")
			tr.signAppWith("files", customLeaf(tr.t, &x509.Certificate{Subject: pkix.Name{CommonName: "files"}, SignatureAlgorithm: x509.SHA256WithRSAPSS}, tr.keys.ca, tr.keys.caKey), verify.DigestSHA1)
		}},
	}
}

// mimetypeDirDiffer checks the missing-directory cases of the mime type
// builder (dir as Nextcloud's message names it).
func mimetypeDirDiffer(dir string) func(tr *ncTree, nc, idd results) string {
	return func(tr *ncTree, nc, idd results) string {
		c, _ := nc.get("core", "EXCEPTION", "class")
		m, _ := nc.get("core", "EXCEPTION", "message")
		if want := strconv.Quote("DirectoryIterator::__construct(" + tr.root + "/" + dir + "): Failed to open directory: No such file or directory"); c != `"UnexpectedValueException"` || m != want {
			return fmt.Sprintf("Nextcloud was expected to report core EXCEPTION UnexpectedValueException %s, reports %s", want, nc)
		}
		if v, _ := idd.get("core", "EXCEPTION", "class"); v != `"integrityd\\ReadException"` || !tr.detailHas("core", "EXCEPTION", "core/js/mimetypelist.js") {
			return fmt.Sprintf("integrityd was expected to report core/js/mimetypelist.js as a ReadException, reports %s", idd)
		}
		return ""
	}
}

// secondCopyNextcloud is what real Nextcloud reports when the copy of
// notes in custom_apps has the highest version: the oracle's full run with
// notes' result replaced by its check of custom_apps/notes.
func secondCopyNextcloud(tr *ncTree) results {
	all := tr.nextcloud("all").withoutScope("notes")
	for k, v := range tr.nextcloud("app", "notes", filepath.Join(tr.root, "custom_apps/notes")) {
		all[k] = v
	}
	return all
}

// duplicateDiffer checks a tree with notes in apps and custom_apps, where
// other is the apps root of the copy Nextcloud does not take: every other
// result is Nextcloud's, and integrityd adds (documented) DUPLICATE_APP on
// notes' appinfo/info.xml and the other copy checked as scope
// notes@ROOT/other, with its own findings and its DUPLICATE_APP.
func duplicateDiffer(other string) func(tr *ncTree, nc, idd results) string {
	return func(tr *ncTree, nc, idd results) string {
		dup := "notes@" + tr.path(other)
		if d := diffResults(nc, idd, func(k []string) bool {
			return k[0] == dup || k[0] == "notes" && len(k) > 1 && k[1] == "DUPLICATE_APP"
		}); len(d) > 0 {
			return fmt.Sprintf("%d difference(s) (scope kind path field):\n  %s", len(d), strings.Join(d, "\n  "))
		}
		if !idd.has("notes", "DUPLICATE_APP", "appinfo/info.xml") || !idd.has(dup, "DUPLICATE_APP", "appinfo/info.xml") {
			return fmt.Sprintf("integrityd was expected to report DUPLICATE_APP in notes and in %s, reports %s", dup, idd)
		}
		return ""
	}
}

// casesDifferent: documented deliberate differences. Each asserts what
// Nextcloud reports and what integrityd reports instead.
func casesDifferent() []oracleCase {
	return []oracleCase{
		// lib/base.php and lib/private/Server.php swap contents. 25
		// compares hash values (array_diff): nothing. 33 compares pairs
		// (array_diff_assoc): core INVALID_HASH for both, as integrityd.
		{name: "swapped-contents", build: func(tr *ncTree) {
			a, b := tr.read("lib/base.php"), tr.read("lib/private/Server.php")
			tr.write("lib/base.php", b)
			tr.write("lib/private/Server.php", a)
		}, differ: func(tr *ncTree, nc, idd results) string {
			want := []string{"lib/base.php", "lib/private/Server.php"}
			if s := idd.expect("core", "INVALID_HASH", want...); s != "" {
				return "integrityd: " + s
			}
			if tr.major() >= 26 {
				return equalOrDiff(nc, idd)
			}
			if nc.has("core") {
				return fmt.Sprintf("Nextcloud %s was expected to miss swapped contents (array_diff on values), reports %s", tr.rel, nc)
			}
			return ""
		}},
		// lib/copy.php, signed with the content of lib/base.php, deleted.
		// 25: nothing (the hash is still among the current values); 33:
		// core FILE_MISSING lib/copy.php, as integrityd.
		{name: "deleted-duplicate-content", build: func(tr *ncTree) {
			tr.write("lib/copy.php", tr.read("lib/base.php"))
			tr.signCore()
			tr.remove("lib/copy.php")
		}, differ: func(tr *ncTree, nc, idd results) string {
			if s := idd.expect("core", "FILE_MISSING", "lib/copy.php"); s != "" {
				return "integrityd: " + s
			}
			if tr.major() >= 26 {
				return equalOrDiff(nc, idd)
			}
			if nc.has("core") {
				return fmt.Sprintf("Nextcloud %s was expected to miss the deleted copy, reports %s", tr.rel, nc)
			}
			return ""
		}},
		// Two extra files with one content, two missing files with one
		// content: array_unique keeps one of each (both releases): core
		// EXTRA_FILE a.php or b.php (one), FILE_MISSING one of
		// lib/dup1.php, lib/dup2.php. integrityd reports all four.
		{name: "identical-content-findings", build: func(tr *ncTree) {
			tr.write("lib/dup1.php", "<?php // same\n")
			tr.write("lib/dup2.php", "<?php // same\n")
			tr.signCore()
			tr.remove("lib/dup1.php")
			tr.remove("lib/dup2.php")
			tr.write("a.php", "<?php // extra\n")
			tr.write("b.php", "<?php // extra\n")
		}, differ: func(tr *ncTree, nc, idd results) string {
			if s := idd.expect("core", "EXTRA_FILE", "a.php", "b.php"); s != "" {
				return "integrityd: " + s
			}
			if s := idd.expect("core", "FILE_MISSING", "lib/dup1.php", "lib/dup2.php"); s != "" {
				return "integrityd: " + s
			}
			if n := len(nc.paths("core", "EXTRA_FILE")); n != 1 {
				return fmt.Sprintf("Nextcloud was expected to keep one of the two identical EXTRA_FILEs, has %d: %s", n, nc)
			}
			if n := len(nc.paths("core", "FILE_MISSING")); n != 1 {
				return fmt.Sprintf("Nextcloud was expected to keep one of the two identical FILE_MISSINGs, has %d: %s", n, nc)
			}
			return subset(nc, idd)
		}},
		// Numeric file names: PHP makes "123" an integer key, and
		// array_merge renumbers integer keys from 0, so Nextcloud (both
		// releases) reports the wrong names and kinds: for 123 changed and
		// 456 extra, files EXTRA_FILE "0" (current = 123's expected hash),
		// "1" (123's current hash), "2" (456's hash). integrityd names the
		// real files: files INVALID_HASH 123, EXTRA_FILE 456.
		{name: "numeric-name", build: func(tr *ncTree) {
			tr.write("apps/files/123", "one two three\n")
			tr.signApp("files")
			tr.write("apps/files/123", "changed\n")
			tr.write("apps/files/456", "extra\n")
		}, differ: func(tr *ncTree, nc, idd results) string {
			if s := idd.expect("files", "INVALID_HASH", "123"); s != "" {
				return "integrityd: " + s
			}
			if s := idd.expect("files", "EXTRA_FILE", "456"); s != "" {
				return "integrityd: " + s
			}
			want := map[string]string{
				"0": strconv.Quote(hashOf("one two three\n")),
				"1": strconv.Quote(hashOf("changed\n")),
				"2": strconv.Quote(hashOf("extra\n")),
			}
			got := map[string]string{}
			for k, v := range nc {
				if p := splitKey(k); len(p) == 4 && p[0] == "files" && p[1] == "EXTRA_FILE" && p[3] == "current" {
					got[p[2]] = v
				} else if p[0] == "files" && !(len(p) == 4 && p[1] == "EXTRA_FILE" && p[3] == "expected") {
					got[label(k)] = v
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				return fmt.Sprintf("Nextcloud was expected to renumber the numeric names to EXTRA_FILE 0, 1, 2, reports %s", nc)
			}
			return ""
		}},
		// datadirectory written ROOT/./mydata: Nextcloud compares the
		// iterator's paths with the string as written (rtrim '/' only), so
		// it does not exclude ROOT/mydata: core EXTRA_FILE
		// mydata/a/files/x.txt. integrityd normalises the path and
		// excludes it: nothing (docs/security.md, found by this test).
		{name: "datadirectory-unnormalised", build: func(tr *ncTree) {
			tr.write("config/config.php", fmt.Sprintf("<?php\n$CONFIG = array (\n  'datadirectory' => '%s/./mydata',\n);\n", tr.root))
			tr.write("mydata/a/files/x.txt", "data\n")
		}, differ: func(tr *ncTree, nc, idd results) string {
			if s := nc.expect("core", "EXTRA_FILE", "mydata/a/files/x.txt"); s != "" || len(nc.paths("core", "EXTRA_FILE")) != 1 {
				return fmt.Sprintf("Nextcloud was expected to report only core EXTRA_FILE mydata/a/files/x.txt, reports %s", nc)
			}
			if len(idd) != 0 {
				return fmt.Sprintf("integrityd was expected to exclude the data directory, reports %s", idd)
			}
			return ""
		}},
		// lib/base.php has a second name (a hard link from data/): Nextcloud
		// does not look at link counts: nothing. integrityd: core HARD_LINK
		// lib/base.php (its own kind), expected = current.
		{name: "hard-link", build: func(tr *ncTree) {
			if err := os.Link(tr.path("lib/base.php"), tr.path("data/linked.php")); err != nil {
				tr.t.Fatal(err)
			}
		}, differ: func(tr *ncTree, nc, idd results) string {
			if len(nc) != 0 {
				return fmt.Sprintf("Nextcloud was expected to report nothing, reports %s", nc)
			}
			e, _ := idd.get("core", "HARD_LINK", "lib/base.php", "expected")
			c, _ := idd.get("core", "HARD_LINK", "lib/base.php", "current")
			if e == "" || e != c || len(idd) != 2 {
				return fmt.Sprintf("integrityd was expected to report only core HARD_LINK lib/base.php, reports %s", idd)
			}
			return ""
		}},
		// core/shipped.json is not JSON: the Checker dies (isShipped:
		// in_array on null, a TypeError; the oracle's stub reads the file
		// as AppManager does). integrityd: core INVALID_HASH
		// core/shipped.json, and the apps with a signature are still
		// checked (files' changed file: files INVALID_HASH lib/App.php).
		{name: "shipped-json-damaged", build: func(tr *ncTree) {
			tr.write("core/shipped.json", "{broken")
			tr.write("apps/files/lib/App.php", "<?php // changed\n")
		}, nextcloud: func(tr *ncTree) results {
			r, crash := tr.nextcloudMayCrash("all")
			if crash != "" {
				return results{"(the Checker died)": strconv.Quote(crash)}
			}
			return r
		}, differ: func(tr *ncTree, nc, idd results) string {
			if v, _ := nc.get("(the Checker died)"); !strings.Contains(v, "in_array()") {
				return fmt.Sprintf("Nextcloud was expected to die on a damaged shipped.json, reports %s", nc)
			}
			if s := idd.expect("core", "INVALID_HASH", "core/shipped.json"); s != "" {
				return "integrityd: " + s
			}
			return idd.expect("files", "INVALID_HASH", "lib/App.php")
		}},
		// config/mimetypealiases.json holds a JSON string, not an object:
		// Detection's array_merge / array_replace gets a string: a
		// TypeError, and the Checker dies. integrityd reports
		// core/js/mimetypelist.js as a ReadException and checks the rest.
		{name: "mimetypelist-custom-not-object", needs: "mimetype", build: func(tr *ncTree) {
			tr.mimetypeTree()
			tr.write("config/mimetypealiases.json", `"not an object"`)
		}, nextcloud: func(tr *ncTree) results {
			r, crash := tr.nextcloudMayCrash("all")
			if crash != "" {
				return results{"(the Checker died)": strconv.Quote(crash)}
			}
			return r
		}, differ: func(tr *ncTree, nc, idd results) string {
			if v, _ := nc.get("(the Checker died)"); !strings.Contains(v, "TypeError") {
				return fmt.Sprintf("Nextcloud was expected to die on the aliases file, reports %s", nc)
			}
			if !tr.detailHas("core", "EXCEPTION", "core/js/mimetypelist.js") {
				return fmt.Sprintf("integrityd was expected to report core/js/mimetypelist.js as a ReadException, reports %s", idd)
			}
			return ""
		}},
		// An app directory whose name OC_App::cleanAppId changes (x..y):
		// findAppInDirectories refuses it, getAppPath throws
		// (AppPathNotFoundException in 33, "App not found" in 25), and
		// runInstanceVerification does not catch it: the Checker dies, so
		// one such directory stops Nextcloud's whole check. integrityd
		// checks the rest: here files' changed file (files INVALID_HASH
		// lib/App.php).
		{name: "app-id-not-clean", build: func(tr *ncTree) {
			tr.write("apps/x..y/appinfo/info.xml", infoXML("x..y", "1.0.0"))
			tr.write("apps/files/lib/App.php", "<?php // changed\n")
		}, nextcloud: func(tr *ncTree) results {
			r, crash := tr.nextcloudMayCrash("all")
			if crash != "" {
				return results{"(the Checker died)": strconv.Quote(crash)}
			}
			return r
		}, differ: func(tr *ncTree, nc, idd results) string {
			if _, died := nc.get("(the Checker died)"); !died {
				return fmt.Sprintf("Nextcloud was expected to die on apps/x..y, reports %s", nc)
			}
			return idd.expect("files", "INVALID_HASH", "lib/App.php")
		}},
		// A file name that is not UTF-8 (caf\xe9.php, extra in core).
		// 25: the Checker dies storing its results (json_encode without
		// JSON_INVALID_UTF8_SUBSTITUTE gives false, json_decode(false) is a
		// TypeError in getResults; real Nextcloud 25 stores them the same
		// way): no report at all. 33 (the oracle's app config keeps arrays;
		// it prints with JSON_INVALID_UTF8_SUBSTITUTE): core EXTRA_FILE
		// "caf\uFFFD.php", which is what integrityd's JSON prints too:
		// equal. integrityd keeps the real bytes in its state (path_b64).
		{name: "non-utf8-name", build: func(tr *ncTree) {
			tr.write("caf\xe9.php", "<?php\n")
		}, nextcloud: func(tr *ncTree) results {
			r, crash := tr.nextcloudMayCrash("all")
			if crash != "" {
				return results{"(the Checker died)": strconv.Quote(crash)}
			}
			return r
		}, differ: func(tr *ncTree, nc, idd results) string {
			if s := idd.expect("core", "EXTRA_FILE", "caf\uFFFD.php"); s != "" {
				return "integrityd: " + s
			}
			if tr.major() >= 26 {
				return equalOrDiff(nc, idd)
			}
			if v, _ := nc.get("(the Checker died)"); !strings.Contains(v, "json_decode()") {
				return fmt.Sprintf("Nextcloud %s was expected to die storing a non-UTF-8 name (TypeError in json_decode), reports %s", tr.rel, nc)
			}
			return ""
		}},
	}
}

// TestOracleUnreadable: files root cannot read (run as uid 65534). A file
// that cannot be read: Nextcloud's hash_file returns false, a warning, and
// core INVALID_HASH with current false; integrityd: EXCEPTION
// integrityd\ReadException naming the file, the rest of the scope still
// checked. A directory that cannot be read: Nextcloud's
// RecursiveDirectoryIterator throws and the whole scope is one EXCEPTION
// UnexpectedValueException; integrityd: the ReadException for that
// directory, the rest of the scope still checked.
func TestOracleUnreadable(t *testing.T) {
	orc := findOracle(t)
	if os.Geteuid() == 0 {
		dir := asnobody.Dir(t)
		out := asnobody.Run(t, dir, "TestOracleUnreadable", "INTEGRITYD_ORACLE="+orc.dir)
		t.Logf("as uid 65534:\n%s", out)
		return
	}
	keys := newOracleKeys(t)
	for _, rel := range orc.releases(t) {
		t.Run("file/"+rel, func(t *testing.T) {
			tr := newNCTree(t, orc, rel, keys)
			tr.write("lib/x.php", "<?php // extra\n")
			if err := os.Chmod(tr.path("lib/private/Server.php"), 0); err != nil {
				t.Fatal(err)
			}
			nc, idd := tr.nextcloud("all"), tr.integrityd()
			if v, _ := nc.get("core", "INVALID_HASH", "lib/private/Server.php", "current"); v != "false" {
				t.Errorf("Nextcloud was expected to report INVALID_HASH with current false for the unreadable file, reports %s", nc)
			}
			if v, _ := idd.get("core", "EXCEPTION", "class"); v != `"integrityd\\ReadException"` || !idd.has("core", "EXTRA_FILE", "lib/x.php") || !tr.detailHas("core", "EXCEPTION", "lib/private/Server.php") {
				t.Errorf("integrityd was expected to report the unreadable file as an EXCEPTION and still lib/x.php, reports %s", idd)
			}
			t.Logf("nextcloud: %s\nintegrityd: %s", nc, idd)
		})
		t.Run("dir/"+rel, func(t *testing.T) {
			tr := newNCTree(t, orc, rel, keys)
			tr.write("apps/files/x.php", "<?php // extra\n")
			if err := os.Chmod(tr.path("apps/files/lib"), 0); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(tr.path("apps/files/lib"), 0o755) }) // before TempDir's removal
			nc, idd := tr.nextcloud("all"), tr.integrityd()
			if v, _ := nc.get("files", "EXCEPTION", "class"); v != `"UnexpectedValueException"` {
				t.Errorf("Nextcloud was expected to make the scope one UnexpectedValueException, reports %s", nc)
			}
			if v, _ := idd.get("files", "EXCEPTION", "class"); v != `"integrityd\\ReadException"` || !idd.has("files", "EXTRA_FILE", "x.php") || !tr.detailHas("files", "EXCEPTION", "lib") {
				t.Errorf("integrityd was expected to report the unreadable directory and still x.php, reports %s", idd)
			}
			t.Logf("nextcloud: %s\nintegrityd: %s", nc, idd)
		})
	}
}

// ---------------------------------------------------------------------------
// The oracle.

type oracle struct{ dir string }

// findOracle finds shared/nextcloud-oracle above the working directory
// (or $INTEGRITYD_ORACLE) and php-cli, or skips.
func findOracle(t *testing.T) oracle {
	t.Helper()
	dir := oracledir.Find(t)
	if _, err := exec.LookPath("php"); err != nil {
		if os.Geteuid() == 0 {
			if _, err := exec.LookPath("apt-get"); err == nil {
				out, err := exec.Command("apt-get", "install", "-y", "-qq", "php-cli").CombinedOutput()
				t.Logf("php-cli missing: apt-get install php-cli: %v\n%s", err, out)
			}
		}
		if _, err := exec.LookPath("php"); err != nil {
			t.Skip("php-cli is not installed and could not be installed (apt-get install php-cli): the oracle cannot run")
		}
	}
	return oracle{dir: dir}
}

// releases lists the releases the oracle has and this php can run.
func (o oracle) releases(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("php", "-r", "echo PHP_VERSION_ID;").Output()
	if err != nil {
		t.Fatalf("php -r: %v", err)
	}
	id, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	var rels []string
	for _, rel := range []string{"25.0.12", "33.0.0"} {
		if _, err := os.Stat(filepath.Join(o.dir, rel, "code")); err != nil {
			t.Logf("oracle has no %s: %v", rel, err)
			continue
		}
		if rel == "33.0.0" && id < 80200 {
			t.Logf("Nextcloud %s needs PHP >= 8.2, php is %d: not run", rel, id)
			continue
		}
		rels = append(rels, rel)
	}
	if len(rels) == 0 {
		t.Skip("the oracle has no release this php can run")
	}
	return rels
}

// ---------------------------------------------------------------------------
// Keys: one test CA, leaf certificates by CN, and odd ones.

type oracleLeaf struct {
	key  *rsa.PrivateKey
	cert []byte // PEM
}

type oracleKeys struct {
	caPEM   []byte
	caKey   *rsa.PrivateKey
	ca      *x509.Certificate
	leaf    map[string]oracleLeaf // core, files, dashboard, mytool, notes, leftover
	otherCA oracleLeaf            // CN files, from a CA root.crt does not hold
	expired oracleLeaf            // CN files, valid 2010-2011
	notYet  oracleLeaf            // CN files, valid from 2090
	ec      []byte                // CN files, EC P-256 key, PEM
}

func newOracleKeys(t *testing.T) *oracleKeys {
	t.Helper()
	caKey, ca, err := demo.NewCert("integrityd oracle test Code Signing Authority", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, other, err := demo.NewCert("integrityd oracle untrusted CA", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	k := &oracleKeys{caPEM: pemCert(ca.Raw), caKey: caKey, ca: ca, leaf: map[string]oracleLeaf{}}
	cns := []string{"core", "files", "dashboard", "mytool", "notes", "leftover"}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, len(cns)+3)
	mk := func(dst *oracleLeaf, cn string, parentKey *rsa.PrivateKey, parent *x509.Certificate, from, to time.Time) {
		defer wg.Done()
		key, der, err := newLeaf(cn, parentKey, parent, from, to, nil)
		if err != nil {
			errs <- err
			return
		}
		mu.Lock()
		*dst = oracleLeaf{key: key.(*rsa.PrivateKey), cert: pemCert(der)}
		mu.Unlock()
	}
	now := time.Now()
	leaves := make([]oracleLeaf, len(cns))
	for i, cn := range cns {
		wg.Add(1)
		go mk(&leaves[i], cn, caKey, ca, now.Add(-time.Hour), now.AddDate(10, 0, 0))
	}
	wg.Add(3)
	go mk(&k.otherCA, "files", otherKey, other, now.Add(-time.Hour), now.AddDate(10, 0, 0))
	go mk(&k.expired, "files", caKey, ca, time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2011, 1, 1, 0, 0, 0, 0, time.UTC))
	go mk(&k.notYet, "files", caKey, ca, time.Date(2090, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC))
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i, cn := range cns {
		k.leaf[cn] = leaves[i]
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, der, err := newLeaf("files", caKey, ca, now.Add(-time.Hour), now.AddDate(10, 0, 0), ecKey)
	if err != nil {
		t.Fatal(err)
	}
	k.ec = pemCert(der)
	return k
}

// newLeaf makes a certificate for cn signed by parent, for pub (an RSA-2048
// key made here when nil).
func newLeaf(cn string, parentKey *rsa.PrivateKey, parent *x509.Certificate, from, to time.Time, pub *ecdsa.PrivateKey) (any, []byte, error) {
	var key any
	var pubKey any
	if pub != nil {
		key, pubKey = pub, &pub.PublicKey
	} else {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, nil, err
		}
		key, pubKey = k, &k.PublicKey
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, NotBefore: from, NotAfter: to}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pubKey, parentKey)
	return key, der, err
}

// customLeaf makes an RSA-2048 leaf from tmpl (serial and validity filled
// in when unset), signed by parent.
func customLeaf(t *testing.T, tmpl *x509.Certificate, parent *x509.Certificate, parentKey *rsa.PrivateKey) oracleLeaf {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().AddDate(1, 0, 0)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	return oracleLeaf{key: key, cert: pemCert(der)}
}

// setTrust replaces the tree's root.crt (the trust both checkers get) and
// signs core again (root.crt is a core file).
func (tr *ncTree) setTrust(pems ...[]byte) {
	tr.t.Helper()
	tr.write("resources/codesigning/root.crt", string(bytes.Join(pems, nil)))
	tr.signCore()
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// ---------------------------------------------------------------------------
// Trees.

// ncTree is a small Nextcloud install of one release in a temporary
// directory: the release's real version.php and core/shipped.json, a few
// core files, .htaccess with the marker, .user.ini, shipped apps files and
// dashboard, a signed app mytool that is not shipped, config/ and data/;
// core and the three apps signed with the test CA (in
// resources/codesigning/root.crt, which both checkers are given as the
// trust anchor).
type ncTree struct {
	t     *testing.T
	orc   oracle
	rel   string
	root  string
	trust string
	keys  *oracleKeys
}

func newNCTree(t *testing.T, orc oracle, rel string, keys *oracleKeys) *ncTree {
	t.Helper()
	tr := &ncTree{t: t, orc: orc, rel: rel, root: t.TempDir(), keys: keys}
	if os.Geteuid() != 0 {
		// as uid 65534 the oracle must reach the tree
		if err := os.Chmod(tr.root, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tr.trust = tr.path("resources/codesigning/root.crt")
	for _, f := range []string{"version.php", "core/shipped.json"} {
		data, err := os.ReadFile(filepath.Join(orc.dir, rel, "root", f))
		if err != nil {
			t.Fatal(err)
		}
		tr.write(f, string(data))
	}
	for name, content := range map[string]string{
		"index.php":  "<?php\nrequire_once __DIR__ . '/lib/base.php';\nOC::handleRequest();\n",
		"status.php": "<?php\necho json_encode(['installed' => true]);\n",
		".htaccess": "<IfModule mod_headers.c>\n  Header always set X-Content-Type-Options \"nosniff\"\n</IfModule>\n" +
			"#### DO NOT CHANGE ANYTHING ABOVE THIS LINE ####\n\nErrorDocument 404 /index.php\n",
		".user.ini":                         "upload_max_filesize=511M\npost_max_size=511M\n",
		"lib/base.php":                      "<?php\nclass OC { public static function handleRequest() {} }\n",
		"lib/private/Server.php":            "<?php\nnamespace OC;\nclass Server {}\n",
		"lib/.htaccess":                     "Require all denied\n#### DO NOT CHANGE ANYTHING ABOVE THIS LINE ####\n",
		"core/js/login.js":                  "window.login = function () { return true; };\n",
		"core/css/server.css":               "body { margin: 0; }\n",
		"resources/codesigning/root.crt":    string(keys.caPEM),
		"apps/files/lib/App.php":            "<?php\nnamespace OCA\\Files;\nclass App {}\n",
		"apps/files/js/files.js":            "console.log('files');\n",
		"apps/files/.htaccess":              "Require all granted\n#### DO NOT CHANGE ANYTHING ABOVE THIS LINE ####\n",
		"apps/dashboard/lib/Dashboard.php":  "<?php\nnamespace OCA\\Dashboard;\nclass Dashboard {}\n",
		"apps/dashboard/js/dashboard.js":    "console.log('dashboard');\n",
		"apps/mytool/lib/Tool.php":          "<?php\nnamespace OCA\\MyTool;\nclass Tool {}\n",
		"config/config.php":                 "<?php\n$CONFIG = array (\n  'instanceid' => 'oracle',\n);\n",
		"data/admin/files/notes.txt":        "user data is not checked\n",
		"apps/files/appinfo/info.xml":       infoXML("files", "2.0.0"),
		"apps/dashboard/appinfo/info.xml":   infoXML("dashboard", "7.0.0"),
		"apps/mytool/appinfo/info.xml":      infoXML("mytool", "1.0.0"),
		"apps/mytool/appinfo/routes.php":    "<?php\nreturn [];\n",
		"core/templates/layout.user.php":    "<html></html>\n",
		"lib/private/Files/View.php":        "<?php\nnamespace OC\\Files;\nclass View {}\n",
		"apps/files/templates/index.php":    "<div id=\"app\"></div>\n",
		"apps/dashboard/templates/main.php": "<div></div>\n",
	} {
		tr.write(name, content)
	}
	tr.signCore()
	for _, id := range []string{"files", "dashboard", "mytool"} {
		tr.signApp(id)
	}
	return tr
}

func infoXML(id, version string) string {
	return fmt.Sprintf("<?xml version=\"1.0\"?>\n<info>\n\t<id>%s</id>\n\t<name>%s</name>\n\t<version>%s</version>\n</info>\n", id, id, version)
}

func (tr *ncTree) major() int {
	n, _ := strconv.Atoi(strings.SplitN(tr.rel, ".", 2)[0])
	return n
}

func (tr *ncTree) path(rel string) string { return filepath.Join(tr.root, rel) }

func (tr *ncTree) write(rel, content string) {
	tr.t.Helper()
	p := tr.path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		tr.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		tr.t.Fatal(err)
	}
}

func (tr *ncTree) read(rel string) string {
	tr.t.Helper()
	data, err := os.ReadFile(tr.path(rel))
	if err != nil {
		tr.t.Fatal(err)
	}
	return string(data)
}

// outside writes a file in a directory of its own outside the tree and
// returns its path.
func (tr *ncTree) outside(name, content string) string {
	tr.t.Helper()
	p := filepath.Join(tr.t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		tr.t.Fatal(err)
	}
	return p
}

func (tr *ncTree) remove(rel string) {
	tr.t.Helper()
	if err := os.Remove(tr.path(rel)); err != nil {
		tr.t.Fatal(err)
	}
}

func (tr *ncTree) mkdir(rel string) {
	tr.t.Helper()
	if err := os.MkdirAll(tr.path(rel), 0o755); err != nil {
		tr.t.Fatal(err)
	}
}

func (tr *ncTree) rename(from, to string) {
	tr.t.Helper()
	if err := os.Rename(tr.path(from), tr.path(to)); err != nil {
		tr.t.Fatal(err)
	}
}

func (tr *ncTree) symlink(target, rel string) {
	tr.t.Helper()
	if err := os.Symlink(target, tr.path(rel)); err != nil {
		tr.t.Fatal(err)
	}
}

// signCore signs core with the CN=core certificate (integrityd sign-core).
func (tr *ncTree) signCore() {
	tr.t.Helper()
	l := tr.keys.leaf["core"]
	if err := verify.NewInstall(tr.root, nil, "").Core().Sign(context.Background(), l.key, l.cert, verify.DigestSHA1); err != nil {
		tr.t.Fatal(err)
	}
}

// signCoreUnfiltered signs core over every file below the root, excluded
// directories included (integrityd's standalone-app signing, moved to
// core/signature.json): a manifest that lists what the walk skips. The
// root .htaccess is removed first (outside a server root it would be
// hashed whole).
func (tr *ncTree) signCoreUnfiltered() {
	tr.t.Helper()
	tr.remove(".htaccess")
	tr.mkdir("appinfo")
	l := tr.keys.leaf["core"]
	if err := verify.NewInstall("", nil, "").App("core", tr.root).Sign(context.Background(), l.key, l.cert, verify.DigestSHA1); err != nil {
		tr.t.Fatal(err)
	}
	tr.rename("appinfo/signature.json", "core/signature.json")
	if err := os.Remove(tr.path("appinfo")); err != nil {
		tr.t.Fatal(err)
	}
}

// signApp signs apps/id with the certificate of CN id (integrityd sign-app).
func (tr *ncTree) signApp(id string) {
	tr.t.Helper()
	tr.signAppWith(id, tr.keys.leaf[id], verify.DigestSHA1)
}

func (tr *ncTree) signAppWith(id string, l oracleLeaf, d verify.Digest) {
	tr.t.Helper()
	tr.signDir(filepath.Join("apps", id), l, d)
}

// signDir signs the app in the directory rel (below the root).
func (tr *ncTree) signDir(rel string, l oracleLeaf, d verify.Digest) {
	tr.t.Helper()
	dir := tr.path(rel)
	if err := verify.NewInstall(tr.root, nil, "").App(filepath.Base(dir), dir).Sign(context.Background(), l.key, l.cert, d); err != nil {
		tr.t.Fatal(err)
	}
}

// app writes a small app id (version) in the apps root dir and signs it
// with the certificate of CN id.
func (tr *ncTree) app(dir, id, version string) {
	tr.t.Helper()
	base := dir + "/" + id + "/"
	tr.write(base+"appinfo/info.xml", infoXML(id, version))
	tr.write(base+"lib/Note.php", "<?php\nnamespace OCA\\Notes;\nclass Note {}\n")
	tr.write(base+"js/"+id+".js", "console.log('"+id+" "+version+"');\n")
	tr.signDir(dir+"/"+id, tr.keys.leaf[id], verify.DigestSHA1)
}

// duplicateNotes puts notes in apps (first) and custom_apps (second), with
// those versions, apps_paths in config.php (literal paths), and a changed
// file in the second copy.
func (tr *ncTree) duplicateNotes(first, second string) {
	tr.t.Helper()
	tr.write("config/config.php", fmt.Sprintf(`<?php
$CONFIG = array (
  'apps_paths' => array (
    0 => array ('path' => '%[1]s/apps', 'url' => '/apps', 'writable' => false),
    1 => array ('path' => '%[1]s/custom_apps', 'url' => '/custom_apps', 'writable' => true),
  ),
);
`, tr.root))
	tr.app("apps", "notes", first)
	tr.app("custom_apps", "notes", second)
	tr.write("custom_apps/notes/lib/Note.php", "<?php // changed\n")
}

// resignHashes rewrites the hashes of apps/id's manifest with edit and
// signs the result as Nextcloud would verify it (this test's own encoder:
// keys are sorted bytewise, which is PHP's ksort for the non-numeric
// names used here; json_encode's escapes, "\/" included).
func (tr *ncTree) resignHashes(id string, edit func(map[string]string)) {
	tr.t.Helper()
	tr.resignHashesWith(id, edit, func(key *rsa.PrivateKey, msg []byte) []byte {
		sig, err := verify.SignPSS(key, verify.DigestSHA1, msg)
		if err != nil {
			tr.t.Fatal(err)
		}
		return sig
	})
}

// resignSHA256 signs apps/id's manifest again with a SHA-256 PSS message
// digest (MGF1-SHA-512, salt 0 otherwise, as Nextcloud's), made by openssl.
func (tr *ncTree) resignSHA256(id string) {
	tr.t.Helper()
	tr.resignHashesWith(id, func(map[string]string) {}, func(key *rsa.PrivateKey, msg []byte) []byte {
		dir := tr.t.TempDir()
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			tr.t.Fatal(err)
		}
		kf, mf := filepath.Join(dir, "key.pem"), filepath.Join(dir, "msg")
		if err := os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			tr.t.Fatal(err)
		}
		if err := os.WriteFile(mf, msg, 0o600); err != nil {
			tr.t.Fatal(err)
		}
		out, err := exec.Command("openssl", "dgst", "-sha256", "-sign", kf, "-sigopt", "rsa_padding_mode:pss",
			"-sigopt", "rsa_pss_saltlen:0", "-sigopt", "rsa_mgf1_md:sha512", mf).Output()
		if err != nil {
			tr.t.Skipf("openssl cannot sign with a SHA-256 PSS digest: %v", err)
		}
		return out
	})
}

// useVersion puts the version.php of release (internal/verify/testdata/
// releases) in the tree.
func (tr *ncTree) useVersion(release string) {
	tr.t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "internal", "verify", "testdata", "releases", "version-"+release+".php"))
	if err != nil {
		tr.t.Fatal(err)
	}
	tr.write("version.php", string(data))
}

// resignHashesWith is resignHashes with the signer given.
func (tr *ncTree) resignHashesWith(id string, edit func(map[string]string), sign func(*rsa.PrivateKey, []byte) []byte) {
	tr.t.Helper()
	rel := "apps/" + id + "/appinfo/signature.json"
	var m struct{ Hashes map[string]string }
	if err := json.Unmarshal([]byte(tr.read(rel)), &m); err != nil {
		tr.t.Fatalf("%s: %v", rel, err)
	}
	edit(m.Hashes)
	keys := make([]string, 0, len(m.Hashes))
	for k := range m.Hashes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var msg strings.Builder
	msg.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			msg.WriteByte(',')
		}
		msg.WriteString(phpJSONString(k) + ":" + phpJSONString(m.Hashes[k]))
	}
	msg.WriteByte('}')
	l := tr.keys.leaf[id]
	sig := sign(l.key, []byte(msg.String()))
	doc := fmt.Sprintf(`{"hashes": %s, "signature": %s, "certificate": %s}`, msg.String(),
		phpJSONString(base64.StdEncoding.EncodeToString(sig)), phpJSONString(string(l.cert)))
	tr.write(rel, doc)
}

// phpJSONString is PHP's json_encode of an ASCII string.
func phpJSONString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\' || r == '/':
			b.WriteString(`\` + string(r))
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r >= 0x7f:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// editManifestField rewrites one string field of a manifest (the rest as
// encoding/json writes it: any JSON reader takes it).
func (tr *ncTree) editManifestField(rel, field string, f func(string) string) {
	tr.t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(tr.read(rel)), &m); err != nil {
		tr.t.Fatalf("%s: %v", rel, err)
	}
	s, _ := m[field].(string)
	m[field] = f(s)
	data, err := json.Marshal(m)
	if err != nil {
		tr.t.Fatal(err)
	}
	tr.write(rel, string(data))
}

// mimetypeTree adds what Nextcloud's mime type builder reads
// (resources/config/*.dist.json: this package's testdata, the oracle has
// no copy of a release's; core/img/filetypes; themes/) and
// core/js/mimetypelist.js as a release ships it, and signs core again.
func (tr *ncTree) mimetypeTree() {
	tr.t.Helper()
	for _, n := range []string{"mimetypealiases", "mimetypemapping", "mimetypenames"} {
		data, err := os.ReadFile(filepath.Join("testdata/oracle/resources-config", n+".dist.json"))
		if err != nil {
			tr.t.Fatal(err)
		}
		tr.write("resources/config/"+n+".dist.json", string(data))
	}
	for _, n := range []string{"application-pdf.svg", "folder.svg", "text.svg", "text-code.svg", "package-x-generic.svg"} {
		tr.write("core/img/filetypes/"+n, "<svg xmlns=\"http://www.w3.org/2000/svg\"/>\n")
	}
	tr.write("themes/example/core/img/filetypes/text.svg", "<svg/>\n")
	tr.write("core/js/mimetypelist.js", tr.mimetypeList("default"))
	tr.signCore()
}

// mimetypeList runs the release's own builder (testdata/oracle/mimetypelist.php).
func (tr *ncTree) mimetypeList(mode string) string {
	tr.t.Helper()
	script, err := filepath.Abs("testdata/oracle/mimetypelist.php")
	if err != nil {
		tr.t.Fatal(err)
	}
	out, err := exec.Command("php", script, filepath.Join(tr.orc.dir, tr.rel, "code"), tr.root, mode).Output()
	if err != nil {
		tr.t.Fatalf("mimetypelist.php %s: %v %s", mode, err, stderrOf(err))
	}
	return string(out)
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}

// nextcloud runs the oracle on the tree (mode and its arguments) and
// returns its results.
func (tr *ncTree) nextcloud(mode ...string) results {
	tr.t.Helper()
	r, crash := tr.nextcloudMayCrash(mode...)
	if crash != "" {
		tr.t.Fatalf("nc-oracle.sh: %s", crash)
	}
	return r
}

// nextcloudMayCrash is nextcloud for a tree where the Checker may die: it
// returns PHP's fatal error then (the oracle's exit status is not 0).
func (tr *ncTree) nextcloudMayCrash(mode ...string) (results, string) {
	tr.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append([]string{"--code", filepath.Join(tr.orc.dir, tr.rel, "code"), "--trust", tr.trust, tr.root}, mode...)
	cmd := exec.CommandContext(ctx, filepath.Join(tr.orc.dir, "nc-oracle.sh"), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		for _, l := range strings.Split(errb.String(), "\n") {
			if strings.HasPrefix(l, "PHP Fatal error:") {
				return nil, strings.TrimSpace(strings.TrimPrefix(l, "PHP Fatal error:"))
			}
		}
		tr.t.Fatalf("nc-oracle.sh %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out.Bytes(), errb.Bytes())
	}
	r, err := parseResults(out.Bytes())
	if err != nil {
		tr.t.Fatalf("nc-oracle.sh output: %v\n%s", err, out.Bytes())
	}
	return r, ""
}

// integrityd runs integrityd check in-process and returns its results.
func (tr *ncTree) integrityd() results {
	tr.t.Helper()
	var out, errb bytes.Buffer
	args := []string{"check", "--root", tr.root, "--trust", tr.trust, "--crl", "none", "--enforce", "yes", "--output", "json"}
	code := run(context.Background(), args, &out, &errb)
	if code != exitClean && code != exitFindings {
		tr.t.Fatalf("integrityd %s: exit %d\n%s%s", strings.Join(args, " "), code, out.Bytes(), errb.Bytes())
	}
	r, err := parseResults(out.Bytes())
	if err != nil {
		tr.t.Fatalf("integrityd output: %v\n%s", err, out.Bytes())
	}
	if (code == exitClean) != (len(r) == 0) {
		tr.t.Errorf("integrityd exit %d with results %s", code, r)
	}
	return r
}

// detailHas reports whether integrityd's detail-json report has a finding
// of kind for path in scope.
func (tr *ncTree) detailHas(scope, kind, path string) bool {
	tr.t.Helper()
	var out, errb bytes.Buffer
	args := []string{"check", "--root", tr.root, "--trust", tr.trust, "--crl", "none", "--enforce", "yes", "--output", "detail-json"}
	if code := run(context.Background(), args, &out, &errb); code != exitClean && code != exitFindings {
		tr.t.Fatalf("integrityd %s: exit %d\n%s", strings.Join(args, " "), code, errb.Bytes())
	}
	var r struct {
		Scopes []struct {
			Findings []struct{ Scope, Kind, Path string }
		}
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		tr.t.Fatalf("integrityd detail-json: %v\n%s", err, out.Bytes())
	}
	for _, sc := range r.Scopes {
		for _, f := range sc.Findings {
			if f.Scope == scope && f.Kind == kind && f.Path == path {
				return true
			}
		}
	}
	return false
}

func hashOf(s string) string {
	h := sha512.Sum512([]byte(s))
	return hex.EncodeToString(h[:])
}

// nestInto adds a key "pad" holding n nested arrays to the JSON object s:
// the document's depth is n+1.
func nestInto(s string, n int) string {
	return `{"pad": ` + strings.Repeat("[", n) + strings.Repeat("]", n) + "," + s[1:]
}

// ---------------------------------------------------------------------------
// Results: a JSON tree flattened to key path → leaf (its JSON text).

type results map[string]string

const keySep = "\x1f"

// parseResults reads one JSON value (object or array, as PHP's json_encode
// writes arrays) and flattens it; duplicate keys and trailing data are
// errors. Empty containers below the top are leaves "{}" (PHP does not
// tell [] from {}).
func parseResults(data []byte) (results, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	r := results{}
	var walk func(path []string) error
	walk = func(path []string) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		leafKey := strings.Join(path, keySep)
		d, ok := tok.(json.Delim)
		if !ok {
			b, err := json.Marshal(tok)
			if err != nil {
				return err
			}
			r[leafKey] = string(b)
			return nil
		}
		n := 0
		seen := map[string]bool{}
		for dec.More() {
			k := strconv.Itoa(n)
			if d == '{' {
				kt, err := dec.Token()
				if err != nil {
					return err
				}
				k = kt.(string)
				if seen[k] {
					return fmt.Errorf("duplicate key %q in %q", k, strings.Join(path, " "))
				}
				seen[k] = true
			}
			if err := walk(append(path[:len(path):len(path)], k)); err != nil {
				return err
			}
			n++
		}
		if _, err := dec.Token(); err != nil {
			return err
		}
		if n == 0 && len(path) > 0 {
			r[leafKey] = "{}"
		}
		return nil
	}
	if err := walk(nil); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the JSON value (%v)", err)
	}
	return r, nil
}

func splitKey(k string) []string { return strings.Split(k, keySep) }

// label prints a key path, each key quoted when it is not plain text.
func label(k string) string {
	parts := splitKey(k)
	for i, p := range parts {
		if strings.ContainsAny(p, " \"") || strconv.Quote(p) != `"`+p+`"` {
			parts[i] = strconv.Quote(p)
		}
	}
	return strings.Join(parts, " ")
}

// has reports whether r has an entry at or below the key path.
func (r results) has(keys ...string) bool {
	p := strings.Join(keys, keySep)
	for k := range r {
		if k == p || strings.HasPrefix(k, p+keySep) {
			return true
		}
	}
	return false
}

func (r results) get(keys ...string) (string, bool) {
	v, ok := r[strings.Join(keys, keySep)]
	return v, ok
}

// paths lists the paths of scope's findings of kind.
func (r results) paths(scope, kind string) []string {
	set := map[string]bool{}
	for k := range r {
		if p := splitKey(k); len(p) >= 3 && p[0] == scope && p[1] == kind {
			set[p[2]] = true
		}
	}
	var out []string
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// expect says what is wrong unless scope has kind findings for all paths.
func (r results) expect(scope, kind string, paths ...string) string {
	for _, p := range paths {
		if !r.has(scope, kind, p) {
			return fmt.Sprintf("no %s %s %q in %s", scope, kind, p, r)
		}
	}
	return ""
}

func (r results) withoutScope(scope string) results {
	out := results{}
	for k, v := range r {
		if splitKey(k)[0] != scope {
			out[k] = v
		}
	}
	return out
}

// String prints r compactly, one finding per group, sorted.
func (r results) String() string {
	if len(r) == 0 {
		return "{}"
	}
	groups := group(r)
	var names []string
	for g := range groups {
		names = append(names, g)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, g := range names {
		fmt.Fprintf(&b, "\n    %s %s", label(g), fields(groups[g]))
	}
	return b.String()
}

// group maps each entry's parent path to its fields (last key → leaf).
func group(r results) map[string]map[string]string {
	g := map[string]map[string]string{}
	for k, v := range r {
		parent, field := "", k
		if i := strings.LastIndex(k, keySep); i >= 0 {
			parent, field = k[:i], k[i+1:]
		}
		if g[parent] == nil {
			g[parent] = map[string]string{}
		}
		g[parent][field] = v
	}
	return g
}

func fields(m map[string]string) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, k+"="+short(m[k]))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// short abbreviates SHA-512 hex strings.
func short(v string) string {
	if len(v) == 130 && v[0] == '"' {
		return v[:13] + `…"`
	}
	return v
}

// diffResults lists the differences between Nextcloud's results and
// integrityd's, one line per finding or field; integrityd-only entries
// that extra accepts are not differences.
func diffResults(nc, idd results, extra func([]string) bool) []string {
	gn, gi := group(nc), group(idd)
	var lines []string
	seen := map[string]bool{}
	for _, m := range []map[string]map[string]string{gn, gi} {
		for g := range m {
			if seen[g] {
				continue
			}
			seen[g] = true
			a, b := gn[g], gi[g]
			label := label(g)
			switch {
			case a == nil:
				ok := true
				for f := range b {
					if !extra(splitKey(g + keySep + f)) {
						ok = false
					}
				}
				if !ok {
					lines = append(lines, fmt.Sprintf("%s: nextcloud=(none) integrityd=%s", label, fields(b)))
				}
			case b == nil:
				lines = append(lines, fmt.Sprintf("%s: nextcloud=%s integrityd=(none)", label, fields(a)))
			default:
				fs := map[string]bool{}
				for f := range a {
					fs[f] = true
				}
				for f := range b {
					fs[f] = true
				}
				var fl []string
				for f := range fs {
					fl = append(fl, f)
				}
				sort.Strings(fl)
				for _, f := range fl {
					va, oka := a[f]
					vb, okb := b[f]
					if oka && okb && va == vb {
						continue
					}
					if !oka && extra(splitKey(g+keySep+f)) {
						continue
					}
					lines = append(lines, fmt.Sprintf("%s %s: nextcloud=%s integrityd=%s", label, f, leafOrNone(va, oka), leafOrNone(vb, okb)))
				}
			}
		}
	}
	sort.Strings(lines)
	return lines
}

func leafOrNone(v string, ok bool) string {
	if !ok {
		return "(none)"
	}
	return short(v)
}

// equalOrDiff is "" when the results are equal, else the differences.
func equalOrDiff(nc, idd results) string {
	if d := diffResults(nc, idd, func([]string) bool { return false }); len(d) > 0 {
		return fmt.Sprintf("%d difference(s) (scope kind path field):\n  %s", len(d), strings.Join(d, "\n  "))
	}
	return ""
}

// subset is "" when every entry of nc is in idd with the same value.
func subset(nc, idd results) string {
	var missing []string
	for k, v := range nc {
		if idd[k] != v {
			missing = append(missing, fmt.Sprintf("%s: nextcloud=%s integrityd=%s", label(k), short(v), leafOrNone(idd[k], idd[k] != "")))
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		return fmt.Sprintf("integrityd lacks what Nextcloud reports:\n  %s", strings.Join(missing, "\n  "))
	}
	return ""
}

// casesTodayMore: more trees integrityd agrees on today.
func casesTodayMore() []oracleCase {
	return []oracleCase{
		// Names whose PHP sort (ksort, numeric strings) is unusual, signed
		// by integrityd: Nextcloud verifies the signature: nothing.
		{name: "php-sort-names", build: func(tr *ncTree) {
			for _, n := range []string{"10", "9", "1e2", "0", "-1", "01", "1.5", " 2", "2 ", "abc", "ABC", "_", "1a", "129", "16c", "22", "0x1A", "9223372036854775808", "-0", "+1"} {
				tr.write("apps/mytool/n/"+n, "name "+n+"\n")
				tr.write("apps/mytool/"+n, "top "+n+"\n")
			}
			tr.signApp("mytool")
		}},
		// Extra files with spaces, quotes, backslashes, NFC and NFD
		// accents, an emoji, control characters: core EXTRA_FILE for each,
		// same names after JSON decoding.
		{name: "odd-names", build: func(tr *ncTree) {
			for i, n := range []string{"with space.php", "quote\"d.php", "back\\slash.php", "caf\u00e9.php", "cafe\u0301.php", "emoji\U0001F600.php", "-dash.php", "...", "tab\tname", "ctl\x01name", "slash\u2215name", "\u00a0nbsp"} {
				tr.write("lib/odd/"+n, fmt.Sprintf("odd %d\n", i))
			}
		}},
		// The marker on the first line: the hash of "": core INVALID_HASH
		// .htaccess.
		{name: "htaccess-marker-first", build: func(tr *ncTree) {
			tr.write(".htaccess", "#### DO NOT CHANGE ANYTHING ABOVE THIS LINE ####\nanything\n")
		}},
		// A copy apps/files.bak (an admin's backup) carries files'
		// signature.json: checked as app files.bak: EXCEPTION "Certificate
		// is not valid for required scope. (Requested: files.bak, current:
		// CN=files)".
		{name: "app-backup-copy", build: func(tr *ncTree) {
			copyDir(tr.t, tr.path("apps/files"), tr.path("apps/.files"))
			copyDir(tr.t, tr.path("apps/files"), tr.path("apps/files.bak"))
		}},
		// apps/mytool is a symbolic link to a directory elsewhere (a
		// development set-up): followed: mytool INVALID_HASH lib/Tool.php.
		{name: "app-symlinked-dir", build: func(tr *ncTree) {
			copyDir(tr.t, tr.path("apps/mytool"), tr.path("elsewhere/mytool"))
			if err := os.RemoveAll(tr.path("apps/mytool")); err != nil {
				tr.t.Fatal(err)
			}
			tr.symlink("../elsewhere/mytool", "apps/mytool")
			tr.write("elsewhere/mytool/lib/Tool.php", "<?php // changed\n")
		}},
		// A symbolic link to a file outside the tree: hashed through:
		// core EXTRA_FILE lib/link.php with the target's hash. (A link to a
		// signed file of the scope is the content-exists-elsewhere case:
		// Nextcloud 25 misses it.)
		{name: "symlink-file-extra", build: func(tr *ncTree) {
			tr.symlink(tr.outside("x.php", "<?php // outside\n"), "lib/link.php")
		}},
		// A signed file replaced by a link to a file with the same content:
		// nothing.
		{name: "symlink-replaces-signed-file", build: func(tr *ncTree) {
			tr.write("lib/copy-of-server.php", tr.read("lib/private/Server.php"))
			tr.signCore()
			tr.remove("lib/private/Server.php")
			tr.symlink("../copy-of-server.php", "lib/private/Server.php")
		}},
		// A symbolic link to a directory: the Checker's
		// RecursiveDirectoryIterator does not follow it (no FOLLOW_SYMLINKS)
		// and generateHashes skips directories: nothing, in both (what is
		// behind such a link is seen by neither).
		{name: "symlink-dir-extra", build: func(tr *ncTree) {
			tr.symlink(filepath.Dir(tr.outside("evil.php", "<?php // outside\n")), "lib/linked")
		}},
		// A signed file became a directory: core FILE_MISSING lib/base.php,
		// EXTRA_FILE lib/base.php/inner.php.
		{name: "file-replaced-by-dir", build: func(tr *ncTree) {
			tr.remove("lib/base.php")
			tr.write("lib/base.php/inner.php", "<?php // inner\n")
		}},
		// apps_paths without ROOT/apps: apps/ is still excluded from core
		// (always in the folder list) and its apps are not checked;
		// custom_apps/notes is: notes INVALID_HASH lib/Note.php.
		{name: "apps-paths-without-apps", build: func(tr *ncTree) {
			tr.write("config/config.php", fmt.Sprintf("<?php\n$CONFIG = array (\n  'apps_paths' => array (\n    0 => array ('path' => '%s/custom_apps', 'url' => '/custom_apps', 'writable' => true),\n  ),\n);\n", tr.root))
			tr.app("custom_apps", "notes", "1.0.0")
			tr.write("apps/files/lib/App.php", "<?php // changed, not checked\n")
			tr.write("custom_apps/notes/lib/Note.php", "<?php // changed\n")
		}},
		// datadirectory with a final slash (rtrim'med) and one below lib/
		// (the folder list is matched at every depth): excluded: nothing.
		{name: "datadirectory-trailing-slash", build: func(tr *ncTree) {
			tr.write("config/config.php", fmt.Sprintf("<?php\n$CONFIG = array (\n  'datadirectory' => '%s/mydata/',\n);\n", tr.root))
			tr.write("mydata/a/files/x.txt", "data\n")
		}},
		{name: "datadirectory-nested", build: func(tr *ncTree) {
			tr.write("config/config.php", fmt.Sprintf("<?php\n$CONFIG = array (\n  'datadirectory' => '%s/lib/userdata',\n);\n", tr.root))
			tr.write("lib/userdata/a/files/x.txt", "data\n")
		}},
		// A signed file emptied: core INVALID_HASH with the hash of "".
		{name: "empty-file-changed", build: func(tr *ncTree) { tr.write("lib/private/Server.php", "") }},
		// info.xml that is not XML still makes an app (getAllApps tests
		// is_file): leftover is checked: leftover INVALID_HASH lib/Note.php.
		// apps/ghost, a link to nowhere, is no directory: not an app.
		// dashboard (shipped) removed entirely: not in the apps folders,
		// not checked: nothing for it.
		{name: "app-odd-entries", build: func(tr *ncTree) {
			tr.app("apps", "leftover", "1.0.0")
			tr.write("apps/leftover/appinfo/info.xml", "not xml <<<")
			tr.signDir("apps/leftover", tr.keys.leaf["leftover"], verify.DigestSHA1)
			tr.write("apps/leftover/lib/Note.php", "<?php // changed\n")
			tr.symlink("../nowhere", "apps/ghost")
			if err := os.RemoveAll(tr.path("apps/dashboard")); err != nil {
				tr.t.Fatal(err)
			}
		}},
		// A dangling symbolic link: hash_file fails: core EXTRA_FILE
		// lib/dangling.php with current false (JSON false). (Found by this
		// test: integrityd printed current "" until main's eb620cd.)
		{name: "symlink-dangling", build: func(tr *ncTree) {
			tr.symlink("nowhere.php", "lib/dangling.php")
		}},
		// Custom aliases, mimetypelist.js not regenerated: the rebuild from
		// all aliases differs, the file is hashed as it is and matches:
		// nothing.
		{name: "mimetypelist-custom-not-regenerated", build: func(tr *ncTree) {
			tr.mimetypeTree()
			tr.write("config/mimetypealiases.json", "{\"application/x-custom\": \"text\"}\n")
		}},
		// Regenerated with custom aliases that were removed since: the
		// rebuild (defaults only now) differs from the file, which is hashed
		// as it is: core INVALID_HASH core/js/mimetypelist.js.
		{name: "mimetypelist-custom-removed", build: func(tr *ncTree) {
			tr.mimetypeTree()
			tr.write("config/mimetypealiases.json", "{\"application/x-custom\": \"text\"}\n")
			tr.write("core/js/mimetypelist.js", tr.mimetypeList("all"))
			tr.remove("config/mimetypealiases.json")
		}},
		// core's manifest lists updater/index.php (as Nextcloud 9.0's
		// updater left it): verify drops updater/ from core's expected
		// hashes and the walk skips updater/: deleted, nothing.
		{name: "updater-in-manifest", build: func(tr *ncTree) {
			keep := tr.t.TempDir()
			for _, d := range []string{"apps", "config", "data"} {
				if err := os.Rename(tr.path(d), filepath.Join(keep, d)); err != nil {
					tr.t.Fatal(err)
				}
			}
			tr.write("updater/index.php", "<?php // updater\n")
			tr.signCoreUnfiltered()
			for _, d := range []string{"apps", "config", "data"} {
				if err := os.Rename(filepath.Join(keep, d), tr.path(d)); err != nil {
					tr.t.Fatal(err)
				}
			}
			tr.remove("updater/index.php")
		}},
		// core's manifest lists files of apps/, config/ and data/ (what the
		// walk skips): core FILE_MISSING for each of them.
		{name: "core-manifest-lists-excluded", build: func(tr *ncTree) { tr.signCoreUnfiltered() }},
		// A manifest re-signed with this test's own encoder, unchanged:
		// nothing (checks resignHashes itself).
		{name: "manifest-resigned", build: func(tr *ncTree) { tr.resignHashes("mytool", func(map[string]string) {}) }},
		// The excluded names are case-sensitive: core EXTRA_FILE thumbs.db
		// and lib/.DS_STORE.
		{name: "excluded-names-case", build: func(tr *ncTree) {
			tr.write("thumbs.db", "lower\n")
			tr.write("lib/.DS_STORE", "upper\n")
		}},
	}
}

// casesCerts: certificate chains and names.
func casesCerts() []oracleCase {
	cn := func(s string) pkix.Name { return pkix.Name{CommonName: s} }
	return []oracleCase{
		// root.crt with two CAs (another first): phpseclib loads every
		// certificate of the file (splitCerts): nothing.
		{name: "root-crt-two-cas", build: func(tr *ncTree) {
			other := customLeaf(tr.t, &x509.Certificate{Subject: cn("another CA"), IsCA: true, BasicConstraintsValid: true}, nil, nil)
			tr.setTrust(other.cert, []byte("some text between\n"), tr.keys.caPEM)
		}},
		// files signed by an intermediate CA that root.crt also holds:
		// validateSignature finds the issuer among the loaded CAs:
		// nothing. Without the intermediate in root.crt: files EXCEPTION
		// "Certificate is not valid." (no chain is built).
		{name: "cert-intermediate-in-root-crt", build: func(tr *ncTree) {
			inter := customLeaf(tr.t, &x509.Certificate{Subject: cn("integrityd oracle intermediate"), IsCA: true, BasicConstraintsValid: true}, tr.keys.ca, tr.keys.caKey)
			b, _ := pem.Decode(inter.cert)
			ic, _ := x509.ParseCertificate(b.Bytes)
			tr.setTrust(tr.keys.caPEM, inter.cert)
			tr.signAppWith("files", customLeaf(tr.t, &x509.Certificate{Subject: cn("files")}, ic, inter.key), verify.DigestSHA1)
		}},
		{name: "cert-intermediate-missing", build: func(tr *ncTree) {
			inter := customLeaf(tr.t, &x509.Certificate{Subject: cn("integrityd oracle intermediate"), IsCA: true, BasicConstraintsValid: true}, tr.keys.ca, tr.keys.caKey)
			b, _ := pem.Decode(inter.cert)
			ic, _ := x509.ParseCertificate(b.Bytes)
			tr.signAppWith("files", customLeaf(tr.t, &x509.Certificate{Subject: cn("files")}, ic, inter.key), verify.DigestSHA1)
		}},
		// A CA with the test CA's name but another key signed the leaf:
		// files EXCEPTION "Certificate is not valid.".
		{name: "cert-fake-ca-same-name", build: func(tr *ncTree) {
			fake := customLeaf(tr.t, &x509.Certificate{Subject: tr.keys.ca.Subject, IsCA: true, BasicConstraintsValid: true}, nil, nil)
			b, _ := pem.Decode(fake.cert)
			fc, _ := x509.ParseCertificate(b.Bytes)
			tr.signAppWith("files", customLeaf(tr.t, &x509.Certificate{Subject: cn("files")}, fc, fake.key), verify.DigestSHA1)
		}},
		// CN "Files" for app files: the comparison is exact: files
		// EXCEPTION "Certificate is not valid for required scope.
		// (Requested: files, current: CN=Files)".
		{name: "cert-cn-case", build: func(tr *ncTree) {
			tr.signAppWith("files", customLeaf(tr.t, &x509.Certificate{Subject: cn("Files")}, tr.keys.ca, tr.keys.caKey), verify.DigestSHA1)
		}},
		// No CN (an O only): "... (Requested: files, current: CN=)".
		{name: "cert-no-cn", build: func(tr *ncTree) {
			tr.signAppWith("files", customLeaf(tr.t, &x509.Certificate{Subject: pkix.Name{Organization: []string{"files"}}}, tr.keys.ca, tr.keys.caKey), verify.DigestSHA1)
		}},
		// The leaf signed by the CA with SHA-1 (sha1WithRSAEncryption,
		// which phpseclib verifies): nothing.
		{name: "cert-sha1-signed", build: func(tr *ncTree) {
			tr.signAppWith("files", customLeaf(tr.t, &x509.Certificate{Subject: cn("files"), SignatureAlgorithm: x509.SHA1WithRSA}, tr.keys.ca, tr.keys.caKey), verify.DigestSHA1)
		}},
		// The leaf signed by the CA with RSASSA-PSS: phpseclib 2's
		// _validateSignature knows only the PKCS#1 v1.5 algorithms and
		// returns null: files EXCEPTION "Certificate is not valid.". (Found
		// by this test: integrityd accepted it until main's eb620cd.)
		{name: "cert-pss-signed", build: func(tr *ncTree) {
			tr.signAppWith("files", customLeaf(tr.t, &x509.Certificate{Subject: cn("files"), SignatureAlgorithm: x509.SHA256WithRSAPSS}, tr.keys.ca, tr.keys.caKey), verify.DigestSHA1)
		}},
	}
}

// casesManifestOdd: signed manifests whose hashes hold what a signer
// would not write; Nextcloud compares keys and values as strings. (Found
// by this test: integrityd printed expected "" for the odd values until
// main's eb620cd.)
func casesManifestOdd() []oracleCase {
	tool := func(edit func(tr *ncTree, h map[string]string)) func(tr *ncTree) {
		return func(tr *ncTree) { tr.resignHashes("mytool", func(h map[string]string) { edit(tr, h) }) }
	}
	return []oracleCase{
		// An uppercase hash of the right content: mytool INVALID_HASH
		// appinfo/routes.php, expected = the uppercase text, current = the
		// lowercase hash.
		{name: "manifest-hash-uppercase", build: tool(func(tr *ncTree, h map[string]string) {
			h["appinfo/routes.php"] = strings.ToUpper(h["appinfo/routes.php"])
		})},
		// A value that is no hash: mytool INVALID_HASH lib/Tool.php with
		// expected "x".
		{name: "manifest-hash-not-hex", build: tool(func(tr *ncTree, h map[string]string) {
			h["lib/Tool.php"] = "x"
		})},
		// Keys no walk produces, with hashes of no file: "lib//x.php",
		// "../outside.php", "/abs.php", "lib/", "": mytool FILE_MISSING for
		// each, as written.
		{name: "manifest-odd-keys", build: tool(func(tr *ncTree, h map[string]string) {
			for i, k := range []string{"lib//x.php", "../outside.php", "/abs.php", "lib/", ""} {
				h[k] = hashOf(fmt.Sprint("odd key ", i))
			}
		})},
		// The manifest lists appinfo/signature.json (the walk never hashes
		// it): mytool FILE_MISSING appinfo/signature.json.
		{name: "manifest-lists-itself", build: tool(func(tr *ncTree, h map[string]string) {
			h["appinfo/signature.json"] = hashOf("itself")
		})},
		// A key naming a signed file by another spelling (lib//Tool.php,
		// the hash of lib/Tool.php): 33 (array_diff_assoc): mytool
		// FILE_MISSING lib//Tool.php, as integrityd; 25 (array_diff on
		// values): the hash is among the current ones: nothing (the
		// content-exists-elsewhere difference).
		{name: "manifest-alias-key", build: tool(func(tr *ncTree, h map[string]string) {
			h["lib//Tool.php"] = h["lib/Tool.php"]
		}), differ: func(tr *ncTree, nc, idd results) string {
			if s := idd.expect("mytool", "FILE_MISSING", "lib//Tool.php"); s != "" {
				return "integrityd: " + s
			}
			if tr.major() >= 26 {
				return equalOrDiff(nc, idd)
			}
			if len(nc) != 0 {
				return fmt.Sprintf("Nextcloud %s was expected to miss the alias (array_diff on values), reports %s", tr.rel, nc)
			}
			return ""
		}},
	}
}
