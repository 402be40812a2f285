package phpconf

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dump renders a value compactly: {k:v,...} with int keys bare and string
// keys quoted, U for UNKNOWN, a trailing "+?" for an open array.
func dump(v Value) string {
	switch v.kind {
	case Null:
		return "null"
	case Bool:
		return strconv.FormatBool(v.b)
	case Int:
		return strconv.FormatInt(v.i, 10)
	case Float:
		return "f" + strconv.FormatFloat(v.f, 'g', -1, 64)
	case String:
		return strconv.Quote(v.s)
	case Unknown:
		return "U"
	}
	var parts []string
	for i, k := range v.a.keys {
		parts = append(parts, k.String()+":"+dump(v.a.vals[i]))
	}
	s := "{" + strings.Join(parts, ",")
	if v.a.open != nil {
		s += "+?"
	}
	return s + "}"
}

func evalSrc(t *testing.T, src string) (*Scope, error) {
	t.Helper()
	return Eval("/etc/nc/config.php", []byte(src), Env{File: "/etc/nc/config.php", ServerRoot: "/srv/nc"})
}

func TestEval(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"array()", `<?php $CONFIG = array('a' => 1, 'b' => 'x',);`, `{"a":1,"b":"x"}`},
		{"short array", "<?php\n$CONFIG = ['a' => [1, 2, [3]]];", `{"a":{0:1,1:2,2:{0:3}}}`},
		{"close tag", "<?php $CONFIG = [1];\n?>\n", `{0:1}`},
		{"close tag ends statement", "<?php $CONFIG = [1] ?>", `{0:1}`},
		{"key assignment", `<?php $CONFIG['a'] = 1; $CONFIG['b']['c'] = 2;`, `{"a":1,"b":{"c":2}}`},
		{"append", `<?php $CONFIG[] = 'x'; $CONFIG[5] = 'y'; $CONFIG[] = 'z';`, `{0:"x",5:"y",6:"z"}`},
		{"numeric string keys", `<?php $CONFIG = ["5" => 'a', "05" => 'b', '5.0' => 'c', '-3' => 'd', '-0' => 'e', ' 1' => 'f'];`,
			`{5:"a","05":"b","5.0":"c",-3:"d","-0":"e"," 1":"f"}`},
		{"key casts", `<?php $CONFIG = [true => 'a', false => 'b', null => 'c', 1.9 => 'd', 'x'];`, `{1:"d",0:"b","":"c",2:"x"}`},
		{"next index after negative", `<?php $CONFIG = [-5 => 'a', 'b'];`, `{-5:"a",-4:"b"}`},
		{"duplicate keys keep position", `<?php $CONFIG = ['a' => 1, 'b' => 2, 'a' => 3];`, `{"a":3,"b":2}`},
		{"int64 key edge", `<?php $CONFIG = ['9223372036854775807' => 1, '9223372036854775808' => 2];`, `{9223372036854775807:1,"9223372036854775808":2}`},
		{"next element occupied", `<?php $CONFIG = [9223372036854775807 => 1, 2];`, `{9223372036854775807:U+?}`},
		{"integers", `<?php $CONFIG = [0x1F, 0o17, 017, 0b101, 1_000, -7, 0X1f, 0B1];`, `{0:31,1:15,2:15,3:5,4:1000,5:-7,6:31,7:1}`},
		{"integer overflow is float", `<?php $CONFIG = [9223372036854775808, -9223372036854775808, 0xFFFFFFFFFFFFFFFF];`,
			`{0:f9.223372036854776e+18,1:f-9.223372036854776e+18,2:f1.8446744073709552e+19}`},
		{"floats", `<?php $CONFIG = [1.5, .5, 1., 1e3, 1E-3, 1_0.5];`, `{0:f1.5,1:f0.5,2:f1,3:f1000,4:f0.001,5:f10.5}`},
		{"constants any case", `<?php $CONFIG = [TRUE, False, NULL, null];`, `{0:true,1:false,2:null,3:null}`},
		{"single quotes", `<?php $CONFIG = ['a\\b\'c\nd\x41'];`, `{0:"a\\b'c\\nd\\x41"}`},
		{"double quote escapes", `<?php $CONFIG = ["\n\t\r\v\e\f\\\$\"|\0|\101|\7|\400|\x41|\x4|\xZ|\u{41}|\u{1F600}|\u|\q|\'|$1|{"];`,
			`{0:"\n\t\r\v\x1b\f\\$\"|\x00|A|\a|\x00|A|\x04|\\xZ|A|😀|\\u|\\q|\\'|$1|{"}`},
		{"interpolation is unknown", `<?php $CONFIG = ["a$b", "{$c}", 'ok'];`, `{0:U,1:U,2:"ok"}`},
		{"heredoc is unknown", "<?php $CONFIG = [<<<EOT\n  text\n  EOT, <<<'N'\nx\nN\n, 'after'];", `{0:U,1:U,2:"after"}`},
		{"comments", "<?php // one\n# two\n/* three\n */ $CONFIG = [/* in */ 'a' // x\n => 1, # y\n];", `{"a":1}`},
		{"concat", `<?php $CONFIG = ['p' => OC::$SERVERROOT.'/apps', 'q' => \OC::$SERVERROOT . "/x", 'r' => 'a' . 1 . true . null . false];`,
			`{"p":"/srv/nc/apps","q":"/srv/nc/x","r":"a11"}`},
		{"dir", `<?php $CONFIG = [__DIR__, dirname(__DIR__), dirname(__DIR__, 2), dirname('/a/b/c'), dirname('a'), dirname('/'), __DIR__ . '/../apps2'];`,
			`{0:"/etc/nc",1:"/etc",2:"/",3:"/a/b",4:".",5:"/",6:"/etc/nc/../apps2"}`},
		{"parentheses and unary minus", `<?php $CONFIG = [('a' . 'b'), -(5), -(-1.5), +3, -'x'];`, `{0:"ab",1:-5,2:f1.5,3:3,4:U}`},
		{"variables", `<?php $x = 'v'; $CONFIG = ['a' => $x, 'b' => $x . '2'];`, `{"a":"v","b":"v2"}`},
		{"copy on assignment", `<?php $a = ['k' => 1]; $CONFIG['x'] = $a; $CONFIG['x']['k'] = 2; $CONFIG['y'] = $a;`, `{"x":{"k":2},"y":{"k":1}}`},
		{"unset", `<?php $CONFIG = ['a' => 1, 'b' => ['c' => 2, 'd' => 3]]; unset($CONFIG['a'], $CONFIG['b']['c']);`, `{"b":{"d":3}}`},
		{"getenv", `<?php $CONFIG = ['a' => getenv('X'), 'b' => 2];`, `{"a":U,"b":2}`},
		{"ternary", `<?php $CONFIG = ['a' => getenv('X') ?: 'd', 'b' => true ? 1 : 2, 'c' => 3];`, `{"a":U,"b":U,"c":3}`},
		{"cast", `<?php $CONFIG = ['a' => (int) '5', 'b' => 1];`, `{"a":U,"b":1}`},
		{"unknown constant", `<?php $CONFIG = ['a' => PHP_EOL, 'b' => 1];`, `{"a":U,"b":1}`},
		{"unknown key opens the array", `<?php $CONFIG = ['a' => 1, getenv('K') => 2, 'b' => 3];`, `{"a":U,"b":3+?}`},
		{"unknown path key", `<?php $CONFIG = ['a' => 1]; $CONFIG[$k] = 2;`, `{"a":U+?}`},
		{"if assigns keys", "<?php $CONFIG = ['a' => 1, 'b' => 2];\nif (getenv('X')) {\n $CONFIG['a'] = 5;\n} else {\n $CONFIG['c'] = 6;\n}", `{"a":U,"b":2,"c":U}`},
		{"if assigns $CONFIG wholesale", "<?php if (getenv('REDIS_HOST')) { $CONFIG = array('x' => 1, 'y' => [2]); }", `{"x":U,"y":U}`},
		{"if replaces earlier keys", "<?php $CONFIG = ['a' => 1]; if (getenv('X')) { $CONFIG = ['b' => 2]; }", `{"a":U,"b":U}`},
		{"alternative if syntax", "<?php $CONFIG = ['a' => 1, 'b' => 2]; if (getenv('X')): $CONFIG['a'] = 5; elseif (1): $CONFIG['d'] = 1; else: $CONFIG['c'] = 6; endif;", `{"a":U,"b":2,"d":U,"c":U}`},
		{"else if", "<?php $CONFIG = ['a' => 1]; if (getenv('X')) $CONFIG['a'] = 2; else if (getenv('Y')) $CONFIG['b'] = 3;", `{"a":U,"b":U}`},
		{"conditional return", "<?php $CONFIG = ['a' => 1]; if (getenv('X')) { return; } $CONFIG['b'] = 2;", `{"a":1,"b":U}`},
		{"return", "<?php $CONFIG = ['a' => 1]; return; $CONFIG['b'] = 2;", `{"a":1}`},
		{"foreach makes its variables unknown", "<?php $CONFIG = ['a' => 1]; foreach ([1] as $v) { $CONFIG['b'] = $v; } $x = 1;", `U`},
		{"include makes everything unknown", "<?php $CONFIG = ['a' => 1]; include 'other.php';", `U`},
		{"include then assignment", "<?php include 'other.php'; $CONFIG = ['a' => 1];", `{"a":1}`},
		{"function declaration is skipped", "<?php function f() { $CONFIG = []; } $CONFIG = ['a' => 1];", `{"a":1}`},
		{"plain function call", "<?php ini_set('x', '1'); $CONFIG = ['a' => 1]; define('Y', 2);", `{"a":1}`},
		{"variable variable", "<?php $CONFIG = ['a' => 1]; $$n = 2;", `U`},
		{"not an array", "<?php $CONFIG = 5;", `5`},
		{"scalar as array", "<?php $CONFIG = ['a' => 5]; $CONFIG['a']['b'] = 1;", `{"a":U}`},
		{"nested conditional path", "<?php $CONFIG = ['r' => ['h' => 1]]; if (getenv('P')) { $CONFIG['r']['port'] = 6379; $CONFIG['n']['x'] = 1; }", `{"r":{"h":1,"port":U},"n":U}`},
		{"conditional append", "<?php $CONFIG = ['t' => ['a']]; if (getenv('P')) { $CONFIG['t'][] = 'b'; }", `{"t":{0:"a"+?}}`},
		{"binary b prefix", `<?php $CONFIG = [b'x', B"y"];`, `{0:"x",1:"y"}`},
		{"php tag case", "<?PHP\n$CONFIG = [1];", `{0:1}`},
		{"line magic", "<?php\n\n$CONFIG = [__LINE__];", `{0:3}`},
		{"new", `<?php $CONFIG = ['a' => new Foo(1), 'b' => 'x' . new Bar, 'c' => fn($x) => $x, 'd' => 1];`, `{"a":U,"b":U,"c":U,"d":1}`},
		{"match and closures", "<?php $CONFIG = ['a' => match(1) { 1 => 'x' }, 'b' => function() { return 1; }, 'c' => static fn() => 1, 'd' => 2];", `{"a":U,"b":U,"c":U,"d":2}`},
		{"float in concat", `<?php $CONFIG = ['a' => 'x' . 1.5];`, `{"a":U}`},
		{"array to string", `<?php $CONFIG = ['a' => 'x' . []];`, `{"a":"xArray"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, err := evalSrc(t, tt.src)
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			v, ok := sc.Var("CONFIG")
			got := "unset"
			if ok {
				got = dump(v)
			}
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestEvalReasons(t *testing.T) {
	tests := []struct {
		src, key, want string
	}{
		{"<?php\n$CONFIG = [\n'a' => getenv('X'),\n];", "a", "/etc/nc/config.php:3: getenv() cannot be evaluated"},
		{"<?php\nif (getenv('X')) {\n  $CONFIG['a'] = 1;\n}", "a", "/etc/nc/config.php:3: conditional assignment (under the if at line 2, whose condition cannot be evaluated)"},
		{"<?php\n$CONFIG = ['a' => \"$x\"];", "a", "/etc/nc/config.php:2: variable interpolation in a double-quoted string cannot be evaluated"},
		{"<?php\n$CONFIG = ['a' => 1 + 2];", "a", "/etc/nc/config.php:2: operator + cannot be evaluated"},
		{"<?php\n$CONFIG = ['a' => foo(1)];", "a", "/etc/nc/config.php:2: foo() cannot be evaluated"},
		{"<?php\n$CONFIG = ['a' => $y];", "a", "/etc/nc/config.php:2: $y is not set"},
	}
	for _, tt := range tests {
		sc, err := evalSrc(t, tt.src)
		if err != nil {
			t.Fatalf("%q: %v", tt.src, err)
		}
		v, _ := sc.Var("CONFIG")
		a, ok := v.Arr()
		if !ok {
			t.Fatalf("%q: $CONFIG is %s", tt.src, dump(v))
		}
		got, _ := a.Get(Key{S: tt.key})
		if got.Reason() == nil || got.Reason().String() != tt.want {
			t.Errorf("%q: reason %v, want %s", tt.src, got.Reason(), tt.want)
		}
	}
}

func TestEvalErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"missing semicolon", "<?php\n$CONFIG = [1]\n$x = 2;", "config.php:3: syntax error"},
		{"unterminated array", "<?php\n$CONFIG = array(\n'a' => 1,\n", "config.php:4: syntax error: unexpected end of file"},
		{"unterminated string", "<?php\n$CONFIG = ['a];", "config.php:2: unterminated string"},
		{"unterminated comment", "<?php\n/* x", "config.php:2: unterminated comment"},
		{"leading content", " <?php $CONFIG = [];", `config.php:1: content before "<?php"`},
		{"no open tag", "$CONFIG = [];", `config.php:1: no "<?php" opening tag`},
		{"content after close tag", "<?php $CONFIG = []; ?>\n\n", `config.php:1: content after "?>"`},
		{"adjacent values", "<?php\n$CONFIG = ['a' 'b'];", "config.php:2: syntax error"},
		{"float then string", "<?php\n$CONFIG = [1.'a'];", "config.php:2: syntax error"},
		{"bad octal", "<?php\n$CONFIG = [089];", "config.php:2: invalid numeric literal"},
		{"bad underscore", "<?php\n$CONFIG = [1__0];", "config.php:2: invalid numeric literal"},
		{"bad unicode escape", "<?php\n$CONFIG = [\"\\u{110000}\"];", "config.php:2: invalid UTF-8 codepoint escape sequence"},
		{"empty element", "<?php\n$CONFIG = [1,,2];", "config.php:2: syntax error"},
		{"stray brace", "<?php\n}", "config.php:2: syntax error"},
		{"else without if", "<?php\nelse { }", "config.php:2: syntax error"},
		{"too deep", "<?php $CONFIG = " + strings.Repeat("[", 100) + strings.Repeat("]", 100) + ";", "nesting deeper than 64"},
		{"too deep parens", "<?php $CONFIG = " + strings.Repeat("(", 100) + "1" + strings.Repeat(")", 100) + ";", "nesting deeper than 64"},
		{"too deep ifs", "<?php " + strings.Repeat("if (1) {", 100) + strings.Repeat("}", 100), "nesting deeper than 64"},
		{"unterminated heredoc", "<?php $CONFIG = [<<<EOT\nabc\n];", "config.php:1: unterminated heredoc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := evalSrc(t, tt.src)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want it to contain %q", err, tt.want)
			}
			var se *SyntaxError
			if err != nil && !errors.As(err, &se) {
				t.Errorf("error %T, want *SyntaxError", err)
			}
		})
	}
}

// writeTree creates files under a fresh directory.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadDockerLayout(t *testing.T) {
	c, err := Load("testdata/docker", "/srv/nc", 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range c.Files() {
		names = append(names, filepath.Base(f))
	}
	wantFiles := "apache-pretty-urls.config.php apcu.config.php apps.config.php redis.config.php reverse-proxy.config.php s3.config.php smtp.config.php swift.config.php upgrade-disable-web.config.php"
	if got := strings.Join(names, " "); got != wantFiles {
		t.Errorf("files %s\nwant  %s", got, wantFiles)
	}
	paths, err := c.AppsPaths()
	if err != nil {
		t.Fatal(err)
	}
	want := []AppsPath{{"/srv/nc/apps", "/apps", false}, {"/srv/nc/custom_apps", "/custom_apps", true}}
	if fmt.Sprint(paths) != fmt.Sprint(want) {
		t.Errorf("apps paths %v, want %v", paths, want)
	}
	if d, err := c.DataDir(); err != nil || d != "/srv/nc/data" {
		t.Errorf("DataDir = %q, %v; want the default /srv/nc/data", d, err)
	}
	for key, want := range map[string]string{
		"memcache.local":       `"\\OC\\Memcache\\APCu"`,
		"upgrade.disable-web":  "true",
		"htaccess.RewriteBase": `"/"`,
		"memcache.distributed": "U", // redis.config.php, under if (getenv('REDIS_HOST'))
		"redis":                "U",
		"objectstore":          "U", // s3 and swift
		"mail_smtphost":        "U",
		"overwritehost":        "U", // reverse-proxy.config.php
		"trusted_proxies":      "U",
	} {
		v, found := c.Value(key)
		if !found {
			t.Errorf("%s: not found", key)
			continue
		}
		if got := dump(v); got != want {
			t.Errorf("%s = %s, want %s", key, got, want)
		}
	}
	if _, found := c.Value("integrity.check.disabled"); found {
		t.Error("integrity.check.disabled found")
	}
	// Keys no file names stay absent, not UNKNOWN.
	if _, found := c.Value("datadirectory"); found {
		t.Error("datadirectory found")
	}
	r := mustUnknown(t, c, "overwritehost")
	if !strings.HasSuffix(r.File, "reverse-proxy.config.php") || r.Line != 4 {
		t.Errorf("overwritehost reason %v", r)
	}
}

func mustUnknown(t *testing.T, c *Config, key string) *Reason {
	t.Helper()
	v, _ := c.Value(key)
	if v.Reason() == nil {
		t.Fatalf("%s is not UNKNOWN: %s", key, dump(v))
	}
	return v.Reason()
}

func TestLoadMergeOrder(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"config.php":       "<?php $CONFIG = ['a' => 'main', 'b' => 'main', 'c' => 'main', 'list' => [1], 0 => 'm0', 'nested' => ['k1' => 'main', 'k2' => 'main']];",
		"a.config.php":     "<?php $CONFIG = ['b' => 'a', 'd' => 'a', 5 => 'a5'];",
		"b.config.php":     "<?php $CONFIG = ['c' => 'b', 'd' => 'b', 'list' => [2], 'nested' => ['k2' => 'b', 'k3' => 'b']];",
		"a10.config.php":   "<?php $CONFIG = ['n' => 'a10'];",
		"a2.config.php":    "<?php $CONFIG = ['n' => 'a2'];",
		"x.config.php":     "<?php $other = 1;", // no $CONFIG: contributes nothing
		"y.config.php":     "<?php $CONFIG = 'not an array';",
		".h.config.php":    "<?php $CONFIG = ['a' => 'hidden'];", // glob's '*' skips dot files
		"config.php.bak":   "<?php $CONFIG = ['a' => 'bak'];",
		"zconfig.php":      "<?php $CONFIG = ['a' => 'z'];",
		"sub/z.config.php": "<?php $CONFIG = ['a' => 'sub'];",
	})
	// array_merge up to 32: a file's key replaces the whole value, int
	// keys are renumbered; array_replace_recursive from 33 (and for an
	// unknown release): arrays merge key by key, int keys stay.
	for _, tt := range []struct {
		major int
		want  string
	}{
		{25, `{"a":"main","b":"a","c":"b","list":{0:2},0:"m0","nested":{"k2":"b","k3":"b"},"d":"b",1:"a5","n":"a10"}`},
		{32, `{"a":"main","b":"a","c":"b","list":{0:2},0:"m0","nested":{"k2":"b","k3":"b"},"d":"b",1:"a5","n":"a10"}`},
		{33, `{"a":"main","b":"a","c":"b","list":{0:2},0:"m0","nested":{"k1":"main","k2":"b","k3":"b"},"d":"b",5:"a5","n":"a10"}`},
		{34, `{"a":"main","b":"a","c":"b","list":{0:2},0:"m0","nested":{"k1":"main","k2":"b","k3":"b"},"d":"b",5:"a5","n":"a10"}`},
		{0, `{"a":"main","b":"a","c":"b","list":{0:2},0:"m0","nested":{"k1":"main","k2":"b","k3":"b"},"d":"b",5:"a5","n":"a10"}`},
	} {
		t.Run(fmt.Sprint(tt.major), func(t *testing.T) {
			c, err := Load(dir, "/srv/nc", tt.major)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, f := range c.Files() {
				names = append(names, filepath.Base(f))
			}
			if got, want := strings.Join(names, " "), "config.php a.config.php a2.config.php a10.config.php b.config.php x.config.php y.config.php"; got != want {
				t.Errorf("files %s, want %s", got, want)
			}
			if got := dump(Value{kind: Array, a: c.data}); got != tt.want {
				t.Errorf("merged %s\nwant   %s", got, tt.want)
			}
		})
	}
}

func TestLoadAppsPaths(t *testing.T) {
	tests := []struct {
		name, config, want, err string
	}{
		{"official docker", `'apps_paths' => array ( 0 => array ('path' => OC::$SERVERROOT.'/apps', 'url' => '/apps', 'writable' => false), 1 => array ('path' => OC::$SERVERROOT.'/custom_apps', 'url' => '/custom_apps', 'writable' => true))`,
			"[{/srv/nc/apps /apps false} {/srv/nc/custom_apps /custom_apps true}]", ""},
		{"double quotes", `'apps_paths' => [["path" => "/var/www/apps", "url" => "/apps"]]`, "[{/var/www/apps /apps false}]", ""},
		{"__DIR__", `'apps_paths' => [['path' => __DIR__ . '/../apps2', 'url' => '/apps2/', 'writable' => 1]]`, "[{DIR/../apps2 /apps2 true}]", ""},
		{"trailing slashes trimmed", `'apps_paths' => [['path' => '/a//', 'url' => '/u/']]`, "[{/a /u false}]", ""},
		{"entry without url ignored", `'apps_paths' => [['path' => '/a'], ['path' => '/b', 'url' => '/b'], ['path' => '/c', 'url' => null], 'x']`, "[{/b /b false}]", ""},
		{"duplicate keys", `'apps_paths' => [0 => ['path' => '/old', 'url' => '/o'], 1 => ['path' => '/x', 'url' => '/x'], 0 => ['path' => '/new', 'url' => '/n']]`, "[{/new /n false} {/x /x false}]", ""},
		{"empty", `'apps_paths' => []`, "[]", ""},
		{"absent", `'other' => 1`, "[]", ""},
		{"unknown path", "'apps_paths' => [['path' => getenv('APPS'), 'url' => '/apps']]", "", `config key "apps_paths[0]['path']" cannot be read without running PHP: DIR/config.php:1: getenv() cannot be evaluated; set apps_path in integrityd's configuration (/etc/integrityd/integrityd.conf) or pass --apps-path`},
		{"unknown url", "'apps_paths' => [['path' => '/a', 'url' => FOO]]", "", `"apps_paths[0]['url']"`},
		{"unknown entry", "'apps_paths' => [getenv('X')]", "", `"apps_paths[0]"`},
		{"unknown whole", "'apps_paths' => getenv('X')", "", `config key "apps_paths" cannot be read`},
		{"not an array", "'apps_paths' => 'x'", "", "not an array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeTree(t, map[string]string{"config.php": "<?php $CONFIG = array(" + tt.config + ");"})
			rdir, _ := filepath.EvalSymlinks(dir)
			c, err := Load(dir, "/srv/nc", 0)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.AppsPaths()
			if tt.err != "" {
				want := strings.ReplaceAll(tt.err, "DIR", dir)
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("error %v, want %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s, want := fmt.Sprint(got), strings.ReplaceAll(tt.want, "DIR", rdir); s != want {
				t.Errorf("got %s, want %s", s, want)
			}
			if tt.want == "[]" && got != nil {
				t.Errorf("got %#v, want nil", got)
			}
		})
	}
}

func TestLoadAppsPathsConditional(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"config.php":      "<?php $CONFIG = ['apps_paths' => [['path' => '/a', 'url' => '/a']]];",
		"apps.config.php": "<?php\nif (getenv('X')) {\n  $CONFIG = ['apps_paths' => [['path' => '/b', 'url' => '/b']]];\n}\n",
	})
	c, err := Load(dir, "/srv/nc", 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.AppsPaths()
	var ue *UnknownError
	if !errors.As(err, &ue) || ue.Key != "apps_paths" || ue.Reason.Line != 3 || !strings.HasSuffix(ue.Reason.File, "apps.config.php") {
		t.Fatalf("error %v, want apps_paths UNKNOWN at apps.config.php:3", err)
	}
	if !strings.Contains(err.Error(), "--apps-path") {
		t.Errorf("error %q does not tell the admin what to do", err)
	}
}

func TestLoadDataDir(t *testing.T) {
	for _, tt := range []struct{ config, want, err string }{
		{"'datadirectory' => '/var/nc-data'", "/var/nc-data", ""},
		{`'datadirectory' => OC::$SERVERROOT . "/data2"`, "/srv/nc/data2", ""},
		{"'datadirectory' => null", "/srv/nc/data", ""},
		{"'datadirectory' => getenv('D') ?: '/x'", "", "set data_dir in integrityd's configuration (/etc/integrityd/integrityd.conf) or pass --data-dir"},
	} {
		dir := writeTree(t, map[string]string{"config.php": "<?php $CONFIG = array(" + tt.config + ");"})
		c, err := Load(dir, "/srv/nc", 0)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.DataDir()
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: error %v, want %q", tt.config, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: got %q, %v; want %q", tt.config, got, err, tt.want)
		}
	}
}

func TestIntegrityCheckDisabled(t *testing.T) {
	// want25: getSystemValue(...) === true; want33: getSystemValueBool.
	for _, tt := range []struct {
		value          string
		want25, want33 bool
	}{
		{"true", true, true},
		{"false", false, false},
		{"'false'", false, true},
		{"'true'", false, true},
		{"'0'", false, false},
		{"''", false, false},
		{"1", false, true},
		{"0", false, false},
		{"0.0", false, false},
		{"[]", false, false},
		{"[0]", false, true},
		{"null", false, false},
		{"TRUE", true, true},
	} {
		dir := writeTree(t, map[string]string{"config.php": "<?php $CONFIG = ['integrity.check.disabled' => " + tt.value + "];"})
		c, err := Load(dir, "/srv/nc", 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []struct {
			major int
			want  bool
		}{{25, tt.want25}, {BoolCastSince - 1, tt.want25}, {BoolCastSince, tt.want33}, {33, tt.want33}} {
			got, err := c.IntegrityCheckDisabled(m.major)
			if err != nil || got != m.want {
				t.Errorf("%s, Nextcloud %d: got %v, %v; want %v", tt.value, m.major, got, err, m.want)
			}
		}
	}
	dir := writeTree(t, map[string]string{"config.php": "<?php $CONFIG = ['integrity.check.disabled' => getenv('X')];"})
	c, err := Load(dir, "/srv/nc", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.IntegrityCheckDisabled(33); err == nil {
		t.Error("UNKNOWN integrity.check.disabled: no error")
	}
}

func TestString(t *testing.T) {
	dir := writeTree(t, map[string]string{"config.php": "<?php $CONFIG = ['updater.release.channel' => 'beta', 'n' => 5, 'u' => getenv('X')];"})
	c, err := Load(dir, "/srv/nc", 0)
	if err != nil {
		t.Fatal(err)
	}
	if s, ok, err := c.String("updater.release.channel"); s != "beta" || !ok || err != nil {
		t.Errorf("channel: %q %v %v", s, ok, err)
	}
	if _, ok, err := c.String("absent"); ok || err != nil {
		t.Errorf("absent: %v %v", ok, err)
	}
	if _, _, err := c.String("n"); err == nil {
		t.Error("int as string: no error")
	}
	var ue *UnknownError
	if _, _, err := c.String("u"); !errors.As(err, &ue) {
		t.Errorf("unknown: %v", err)
	}
}

func TestChannel(t *testing.T) {
	v25 := &Version{Version: []int{25, 0, 12, 0}, Channel: "stable"}
	v33 := &Version{Version: []int{33, 0, 0, 16}, Channel: "stable"}
	for _, tt := range []struct{ config, want25, want33 string }{
		{"", "stable", "stable"},
		{"'updater.release.channel' => 'git'", "git", "git"},
		{"'updater.release.channel' => 'beta'", "beta", "beta"},
		{"'updater.release.channel' => ''", "", "stable"},
		{"'updater.release.channel' => 'daily'", "daily", "stable"},
		{"'updater.release.channel' => null", "stable", "stable"},
		{"'updater.release.channel' => false", "(bool value)", "stable"},
	} {
		dir := writeTree(t, map[string]string{"config.php": "<?php $CONFIG = [" + tt.config + "];"})
		c, err := Load(dir, "/srv/nc", 0)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := c.Channel(v25); got != tt.want25 || err != nil {
			t.Errorf("%s, 25: %q %v, want %q", tt.config, got, err, tt.want25)
		}
		if got, err := c.Channel(v33); got != tt.want33 || err != nil {
			t.Errorf("%s, 33: %q %v, want %q", tt.config, got, err, tt.want33)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	t.Run("missing config.php is skipped", func(t *testing.T) {
		dir := writeTree(t, map[string]string{"a.config.php": "<?php $CONFIG = ['a' => 1];"})
		c, err := Load(dir, "/srv/nc", 0)
		if err != nil || len(c.Files()) != 1 {
			t.Fatalf("%v %v", c, err)
		}
	})
	t.Run("missing directory", func(t *testing.T) {
		c, err := Load(filepath.Join(t.TempDir(), "none"), "/srv/nc", 0)
		if err != nil || len(c.Files()) != 0 {
			t.Fatalf("%v %v", c, err)
		}
	})
	t.Run("syntax error names file and line", func(t *testing.T) {
		dir := writeTree(t, map[string]string{"config.php": "<?php $CONFIG = [];", "b.config.php": "<?php\n\n$CONFIG = [1 2];"})
		_, err := Load(dir, "/srv/nc", 0)
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "b.config.php")+":3: syntax error") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("unreadable file", func(t *testing.T) {
		dir := writeTree(t, map[string]string{"config.php": "<?php $CONFIG = [];"})
		if err := os.Mkdir(filepath.Join(dir, "d.config.php"), 0o755); err != nil {
			t.Fatal(err)
		}
		_, err := Load(dir, "/srv/nc", 0)
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("fifo does not block", func(t *testing.T) {
		dir := t.TempDir()
		if err := syscall.Mkfifo(filepath.Join(dir, "config.php"), 0o644); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { _, err := Load(dir, "/srv/nc", 0); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Fatalf("error %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Load blocked on a FIFO")
		}
	})
	t.Run("too large", func(t *testing.T) {
		dir := writeTree(t, map[string]string{"config.php": "<?php\n" + strings.Repeat("// x\n", MaxFileSize/5+1)})
		_, err := Load(dir, "/srv/nc", 0)
		if err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("permission denied on config.php", func(t *testing.T) {
		if os.Geteuid() == 0 {
			// root reads any file; drop the capability in a child instead.
			if _, err := exec.LookPath("setpriv"); err != nil {
				t.Skip("running as root and setpriv is absent: cannot make a file unreadable")
			}
		}
		dir := writeTree(t, map[string]string{"config.php": "<?php $CONFIG = [];"})
		if err := os.Chmod(filepath.Join(dir, "config.php"), 0); err != nil {
			t.Fatal(err)
		}
		if os.Geteuid() == 0 {
			out, err := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "cat", filepath.Join(dir, "config.php")).CombinedOutput()
			if err == nil {
				t.Fatalf("cat as nobody succeeded: %s", out)
			}
			return // readFile's error path is the same os.OpenFile error
		}
		_, err := Load(dir, "/srv/nc", 0)
		if err == nil || !errors.Is(err, fs.ErrPermission) {
			t.Fatalf("error %v", err)
		}
	})
}

func TestLoadVersion(t *testing.T) {
	for _, tt := range []struct {
		file, str, channel string
		version            []int
	}{
		{"testdata/version-33.0.0.php", "33.0.0", "stable", []int{33, 0, 0, 16}},
		{"testdata/version-25.0.12.php", "25.0.12", "stable", []int{25, 0, 12, 0}},
	} {
		v, err := LoadVersion(tt.file)
		if err != nil {
			t.Fatal(err)
		}
		if v.VersionString != tt.str || v.Channel != tt.channel || fmt.Sprint(v.Version) != fmt.Sprint(tt.version) {
			t.Errorf("%s: %+v", tt.file, v)
		}
	}
	_, err := LoadVersion(filepath.Join(t.TempDir(), "version.php"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v, want fs.ErrNotExist", err)
	}
	dir := writeTree(t, map[string]string{
		"git.php":     "<?php $OC_Version = array(34,0,0,0); $OC_VersionString = '34.0.0 dev'; $OC_Channel = 'git';",
		"nochan.php":  "<?php $OC_Version = [1]; $OC_VersionString = '1';",
		"unknown.php": "<?php $OC_Version = [1]; $OC_VersionString = '1'; $OC_Channel = getenv('C');",
	})
	if v, err := LoadVersion(filepath.Join(dir, "git.php")); err != nil || v.Channel != "git" {
		t.Errorf("git: %+v %v", v, err)
	}
	if _, err := LoadVersion(filepath.Join(dir, "nochan.php")); err == nil || !strings.Contains(err.Error(), "does not set $OC_Channel") {
		t.Errorf("no channel: %v", err)
	}
	if _, err := LoadVersion(filepath.Join(dir, "unknown.php")); err == nil || !strings.Contains(err.Error(), "getenv() cannot be evaluated") {
		t.Errorf("unknown channel: %v", err)
	}
}

func TestSymlinkedConfigDir(t *testing.T) {
	// __DIR__ is the directory of the file with symbolic links resolved.
	real := writeTree(t, map[string]string{"config.php": "<?php $CONFIG = ['datadirectory' => __DIR__ . '/data'];"})
	link := filepath.Join(t.TempDir(), "cfg")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	c, err := Load(link, "/srv/nc", 0)
	if err != nil {
		t.Fatal(err)
	}
	rreal, _ := filepath.EvalSymlinks(real)
	if d, _ := c.DataDir(); d != rreal+"/data" {
		t.Errorf("datadirectory %q, want %q", d, rreal+"/data")
	}
}

func TestStrnatcmp(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"a2", "a10", -1},
		{"a10", "a2", 1},
		{"a", "a", 0},
		{"a", "b", -1},
		{"", "a", -1},
		{"x01", "x1", -1},
		{"x 1", "x1", 0},
		{"007", "7", 0},
		{"a1b", "a1c", -1},
		{"1.5", "1.10", -1},
		{"A", "a", -1},
	} {
		if got := strnatcmp(tt.a, tt.b); got != tt.want {
			t.Errorf("strnatcmp(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestStrnatcmpPHP(t *testing.T) {
	php := needPHP(t)
	names := []string{"a2", "a10", "a02", "a 2", "a", "", "b", "B", "10", "9", "09", "0", "x.1", "x.01", "x.10", "1a", "01a", " 1", "a1b2", "a1b10", "a01b2", "z00", "z0", "z000a"}
	var pairs []string
	for _, a := range names {
		for _, b := range names {
			pairs = append(pairs, fmt.Sprintf("[%q,%q]", a, b))
		}
	}
	script := `foreach (json_decode($argv[1]) as $p) { echo strnatcmp($p[0], $p[1]) <=> 0, "\n"; }`
	out, err := exec.Command(php, "-r", script, "["+strings.Join(pairs, ",")+"]").Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(out))
	i := 0
	for _, a := range names {
		for _, b := range names {
			if want, _ := strconv.Atoi(lines[i]); strnatcmp(a, b) != want {
				t.Errorf("strnatcmp(%q, %q) = %d, PHP says %d", a, b, strnatcmp(a, b), want)
			}
			i++
		}
	}
}

func TestTruthy(t *testing.T) {
	nan := Value{kind: Float, f: math.NaN()}
	if b, ok := nan.Truthy(); !b || !ok {
		t.Error("NaN is true in PHP")
	}
}

// TestQuadraticInputs: many unsets of a large array, and many copies of
// a large array: bounded work, an error rather than minutes. Work is
// counted, not timed: each statement touches every entry of the array
// (copies or moves it), so the statements run before the error (its line
// says where evaluation stopped) times the array's size bound the work
// done. That bound must not grow with the input: quadratic inputs of n
// and 2n entries stop after about the same work (the budget), where
// evaluating them whole would be 4 times the work. (Reaching the budget
// costs the same whatever the input: two sizes say as much as the
// 100,000 entries this test used to time.)
func TestQuadraticInputs(t *testing.T) {
	input := func(stmt string, n int) string {
		var b strings.Builder
		b.WriteString("<?php $a = [")
		for i := range n {
			fmt.Fprintf(&b, "%d,", i)
		}
		b.WriteString("];\n") // line 1; statement i on line i+2
		for i := range n / 2 {
			fmt.Fprintf(&b, stmt, i)
		}
		return b.String()
	}
	// work evaluates the input of n entries and returns the entries its
	// statements touched at most before it was refused.
	work := func(t *testing.T, name, stmt string, n int) int {
		t.Helper()
		_, err := Eval("q.php", []byte(input(stmt, n)), Env{})
		var se *SyntaxError
		if !errors.As(err, &se) || !strings.Contains(se.Msg, "too complex") {
			t.Fatalf("%s, %d entries: error %v, want too complex", name, n, err)
		}
		ran := se.Line - 2
		if ran < 0 || ran > n/2 {
			t.Fatalf("%s, %d entries: refused at line %d, outside the input", name, n, se.Line)
		}
		return ran * n
	}
	for name, stmt := range map[string]string{"unset": "unset($a[%d]);\n", "copy": "$b = $a; $b[%d] = 1;\n"} {
		t.Run(name, func(t *testing.T) {
			// Small enough that evaluating them whole (no budget) is
			// quick, large enough that the budget is reached: 8M and
			// 32M entries touched in all.
			w1, w2 := work(t, name, stmt, 4000), work(t, name, stmt, 8000)
			t.Logf("entries touched before the refusal: %d for 4,000 entries, %d for 8,000", w1, w2)
			if w2 > 2*w1 {
				t.Errorf("%d entries touched for an input of 8,000, %d for 4,000: the work grows faster than the input", w2, w1)
			}
			if w2 > 2*maxWork {
				t.Errorf("%d entries touched for an input of 8,000, want at most about %d (the budget)", w2, maxWork)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, p := range []string{"testdata/docker/redis.config.php", "testdata/docker/s3.config.php", "testdata/docker/apps.config.php", "testdata/version-33.0.0.php"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("<?php $CONFIG = ['a' => [1, 2 => \"\\u{41}\"], getenv('x') => 1]; if (1): $CONFIG[] = 1; endif; ?>"))
	f.Add([]byte("<?php $a = [1]; $a = [$a, $a]; $a = [$a, $a]; $CONFIG = $a;"))
	f.Fuzz(func(t *testing.T, src []byte) {
		start := time.Now()
		sc, err := Eval("fuzz.php", src, Env{File: "/x/fuzz.php", ServerRoot: "/srv"})
		if err == nil {
			if v, ok := sc.Var("CONFIG"); ok {
				_ = dumpBounded(v, 10000)
			}
		}
		// A hang guard, not a speed target: the work is bounded by
		// maxWork and maxDepth (TestQuadraticInputs counts it); this
		// catches a loop that is not, which runs for ever.
		if d := time.Since(start); d > time.Minute {
			t.Fatalf("Eval took %v on %d bytes: unbounded work", d, len(src))
		}
	})
}

// dumpBounded walks a value, at most n entries (shared arrays may make the
// logical tree exponential; the walk must still end).
func dumpBounded(v Value, n int) int {
	if v.kind != Array || n <= 0 {
		return n - 1
	}
	for _, x := range v.a.vals {
		n = dumpBounded(x, n-1)
		if n <= 0 {
			return n
		}
	}
	return n
}

func BenchmarkEval2000Keys(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("<?php\n$CONFIG = array (\n")
	for i := range 2000 {
		switch i % 4 {
		case 0:
			fmt.Fprintf(&sb, "  'key%d' => 'value %d with some text',\n", i, i)
		case 1:
			fmt.Fprintf(&sb, "  'key%d' => %d,\n", i, i)
		case 2:
			fmt.Fprintf(&sb, "  'key%d' => true,\n", i)
		case 3:
			fmt.Fprintf(&sb, "  'key%d' => array ('path' => OC::$SERVERROOT . '/apps%d', 'url' => \"/apps%d\", 'writable' => false),\n", i, i, i)
		}
	}
	sb.WriteString(");\n")
	src := []byte(sb.String())
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		sc, err := Eval("bench.php", src, Env{ServerRoot: "/srv"})
		if err != nil {
			b.Fatal(err)
		}
		if v, _ := sc.Var("CONFIG"); v.a.Len() != 2000 {
			b.Fatal("wrong length")
		}
	}
}

// TestLoadThirdAppsRoot: config.php lists three apps roots and the
// official image's apps.config.php (testdata/docker's) two. Up to 32
// (array_merge) apps.config.php's apps_paths replaces config.php's whole;
// from 33 (array_replace_recursive) entries 0 and 1 are replaced and the
// third survives, which Nextcloud then checks.
func TestLoadThirdAppsRoot(t *testing.T) {
	two := "[{/srv/nc/apps /apps false} {/srv/nc/custom_apps /custom_apps true}]"
	three := "[{/srv/nc/apps /apps false} {/srv/nc/custom_apps /custom_apps true} {/var/www/html/extra_apps /extra_apps false}]"
	for _, tt := range []struct {
		major int
		want  string
	}{{25, two}, {32, two}, {33, three}, {34, three}, {0, three}} {
		t.Run(fmt.Sprint(tt.major), func(t *testing.T) {
			c, err := Load("testdata/docker-third-root", "/srv/nc", tt.major)
			if err != nil {
				t.Fatal(err)
			}
			paths, err := c.AppsPaths()
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(paths); got != tt.want {
				t.Errorf("apps paths %s, want %s", got, tt.want)
			}
		})
	}
}

// TestLoadConditionalReassign: a config file that includes config.php and
// reassigns $CONFIG under an if whose branches cannot set apps_paths
// leaves apps_paths known (it is config.php's whether a branch runs or
// not); a branch that can set it, or an include that cannot be followed,
// makes it UNKNOWN (an error naming the file, never a guess).
func TestLoadConditionalReassign(t *testing.T) {
	const base = "<?php\n$CONFIG = ['apps_paths' => [['path' => '/srv/a', 'url' => '/a']], 'dbhost' => 'x'];\n"
	const one = "[{/srv/a /a false}]"
	for _, tt := range []struct {
		name, z, want, err string
	}{
		{"if without else", "<?php\ninclude __DIR__ . '/config.php';\nif (getenv('X')) { $CONFIG = ['loglevel' => 0]; }\n", one, ""},
		{"if and else", "<?php\nrequire __DIR__ . '/config.php';\nif (getenv('X')) { $CONFIG = ['loglevel' => 0]; } else { $CONFIG = ['loglevel' => 1]; }\n", one, ""},
		{"no include", "<?php\nif (getenv('X')) { $CONFIG = ['loglevel' => 0]; }\n", one, ""},
		{"branch sets apps_paths", "<?php\ninclude __DIR__ . '/config.php';\nif (getenv('X')) { $CONFIG = ['apps_paths' => []]; }\n", "", "z.config.php:3: conditional assignment"},
		{"branch of unknown keys", "<?php\ninclude __DIR__ . '/config.php';\nif (getenv('X')) { $CONFIG = getenv('Y'); }\n", "", "z.config.php:3"},
		{"include_once", "<?php\ninclude_once __DIR__ . '/config.php';\nif (getenv('X')) { $CONFIG = ['loglevel' => 0]; }\n", "", "cannot be read without running PHP"},
		{"relative include", "<?php\ninclude 'config.php';\nif (getenv('X')) { $CONFIG = ['loglevel' => 0]; }\n", "", "cannot be read without running PHP"},
		{"conditional include", "<?php\nif (getenv('X')) { include __DIR__ . '/config.php'; }\n$CONFIG['loglevel'] = 1;\n", "", "include at line 2"},
	} {
		for _, major := range []int{32, 33} {
			t.Run(fmt.Sprint(tt.name, "/", major), func(t *testing.T) {
				dir := writeTree(t, map[string]string{"config.php": base, "z.config.php": tt.z})
				c, err := Load(dir, "/srv/nc", major)
				if err != nil {
					t.Fatal(err)
				}
				got, err := c.AppsPaths()
				if tt.err != "" {
					if err == nil || !strings.Contains(err.Error(), tt.err) {
						t.Fatalf("apps paths %v, error %v; want an error with %q", got, err, tt.err)
					}
					return
				}
				if err != nil || fmt.Sprint(got) != tt.want {
					t.Errorf("apps paths %v, %v; want %s", got, err, tt.want)
				}
			})
		}
	}
	// The same in real files: testdata/if-reassign.
	c, err := Load("testdata/if-reassign", "/srv/nc", 33)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.AppsPaths()
	if want := "[{/var/www/html/apps /apps false} {/var/www/html/custom_apps /custom_apps true} {/var/www/html/extra_apps /extra_apps false}]"; err != nil || fmt.Sprint(got) != want {
		t.Errorf("testdata/if-reassign: apps paths %v, %v; want %s", got, err, want)
	}
}
