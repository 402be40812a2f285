package phpconf

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The differential test runs real PHP on every testdata file and on
// generated config files, and requires the evaluator to agree exactly
// wherever it claims a value is known.

const diffServerRoot = "/srv/nc"

// diffSeeds are the generator seeds; a failure names its seed.
const diffSeeds = 400

func needPHP(t *testing.T) string {
	t.Helper()
	php, err := exec.LookPath("php")
	if err == nil {
		return php
	}
	// .ci/run installs php-cli with apt; do the same when possible.
	if os.Geteuid() == 0 {
		if _, aerr := exec.LookPath("apt-get"); aerr == nil {
			cmd := exec.Command("sh", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends php-cli >/dev/null")
			if out, ierr := cmd.CombinedOutput(); ierr == nil {
				if php, err = exec.LookPath("php"); err == nil {
					return php
				}
			} else {
				t.Logf("apt-get install php-cli: %v: %s", ierr, out)
			}
		}
	}
	t.Skip("php-cli is not installed and cannot be installed with apt here (not root or no apt-get): the differential test needs real PHP")
	return ""
}

type phpResult struct {
	Vars  [][2]json.RawMessage `json:"vars"`
	Error string               `json:"error"`
}

// runPHP includes each file in a fresh scope and returns what it left set.
func runPHP(t *testing.T, env []string, files []string) []phpResult {
	t.Helper()
	php := needPHP(t)
	var out []phpResult
	for len(files) > 0 {
		n := min(len(files), 200)
		cmd := exec.Command(php, "-d", "display_errors=0", "-d", "log_errors=0", "-d", "error_reporting=E_ALL", "-d", "opcache.enable_cli=0", filepath.Join("testdata", "harness.php"))
		cmd.Args = append(cmd.Args, files[:n]...)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("php: %v: %s", err, stderr.String())
		}
		sc := bufio.NewScanner(&stdout)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			var r phpResult
			d := json.NewDecoder(bytes.NewReader(sc.Bytes()))
			d.UseNumber()
			if err := d.Decode(&r); err != nil {
				t.Fatalf("php output: %v: %s", err, sc.Text())
			}
			out = append(out, r)
		}
		files = files[n:]
	}
	return out
}

// phpVal is one decoded value of the harness: ["a", [[kt, k, v]...]],
// ["s", hex], ["i", n], ["f", hexbits], ["b", bool], ["n"].
func decodePHP(raw json.RawMessage) ([]any, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v []any
	err := d.Decode(&v)
	return v, err
}

// agree reports where our value disagrees with PHP's ("" when it agrees
// wherever ours is known).
func agree(path string, ours Value, php []any) string {
	if ours.kind == Unknown {
		return ""
	}
	tag, _ := php[0].(string)
	switch ours.kind {
	case Null:
		if tag == "n" {
			return ""
		}
	case Bool:
		if tag == "b" && php[1].(bool) == ours.b {
			return ""
		}
	case Int:
		if tag == "i" && php[1].(json.Number).String() == strconv.FormatInt(ours.i, 10) {
			return ""
		}
	case Float:
		if tag == "f" && php[1].(string) == fmt.Sprintf("%016x", math.Float64bits(ours.f)) {
			return ""
		}
	case String:
		if tag == "s" && php[1].(string) == hex.EncodeToString([]byte(ours.s)) {
			return ""
		}
	case Array:
		if tag != "a" {
			break
		}
		entries, _ := php[1].([]any)
		type pe struct {
			key Key
			val []any
		}
		var pk []pe
		for _, e := range entries {
			t := e.([]any)
			var k Key
			if t[0].(string) == "i" {
				n, _ := strconv.ParseInt(t[1].(json.Number).String(), 10, 64)
				k = Key{IsInt: true, I: n}
			} else {
				b, _ := hex.DecodeString(t[1].(string))
				k = Key{S: string(b)}
			}
			val, _ := t[2].([]any)
			pk = append(pk, pe{k, val})
		}
		phpIdx := map[Key]int{}
		for i, e := range pk {
			phpIdx[e.key] = i
		}
		last := -1
		for i, k := range ours.a.keys {
			v := ours.a.vals[i]
			j, ok := phpIdx[k]
			if !ok {
				if v.kind == Unknown {
					continue
				}
				return fmt.Sprintf("%s[%s]: ours is known (%s), PHP has no such key", path, k, v.kind)
			}
			if v.kind != Unknown && ours.a.orderUnknown == nil && ours.a.open == nil {
				if j < last {
					return fmt.Sprintf("%s[%s]: entry order differs from PHP's", path, k)
				}
				last = j
			}
			if d := agree(path+"["+k.String()+"]", v, pk[j].val); d != "" {
				return d
			}
		}
		if ours.a.open == nil {
			for _, e := range pk {
				if e.key.IsInt && ours.a.nextUnknown != nil {
					continue // int keys the renumbering may have placed
				}
				if _, ok := ours.a.idx[e.key]; !ok {
					return fmt.Sprintf("%s: PHP has key %s, ours is closed and lacks it", path, e.key)
				}
			}
		}
		return ""
	}
	return fmt.Sprintf("%s: ours is %s %s, PHP's is %v", path, ours.kind, show(ours), php)
}

func show(v Value) string {
	switch v.kind {
	case String:
		return strconv.Quote(v.s)
	case Int:
		return strconv.FormatInt(v.i, 10)
	case Float:
		return strconv.FormatFloat(v.f, 'g', -1, 64)
	case Bool:
		return strconv.FormatBool(v.b)
	}
	return ""
}

// compareScope checks every variable of the scope against PHP's result.
func compareScope(sc *Scope, r phpResult) string {
	phpVars := map[string][]any{}
	for _, nv := range r.Vars {
		var name string
		if err := json.Unmarshal(nv[0], &name); err != nil {
			return err.Error()
		}
		v, err := decodePHP(nv[1])
		if err != nil {
			return err.Error()
		}
		phpVars[name] = v
	}
	for name, v := range sc.vars {
		pv, ok := phpVars[name]
		if !ok {
			if v.kind == Unknown {
				continue
			}
			// An array whose entries are all UNKNOWN stands for "unset
			// or an array" after a conditional path assignment.
			if v.kind == Array && allUnknown(v.a) {
				continue
			}
			return fmt.Sprintf("$%s: ours is set (%s), PHP's is not", name, v.kind)
		}
		if d := agree("$"+name, v, pv); d != "" {
			return d
		}
	}
	if sc.opaque == nil {
		for name := range phpVars {
			if _, ok := sc.vars[name]; !ok {
				return fmt.Sprintf("$%s: PHP sets it, ours does not", name)
			}
		}
	}
	return ""
}

func allUnknown(a *Arr) bool {
	for _, v := range a.vals {
		if v.kind != Unknown {
			return false
		}
	}
	return true
}

func testdataPHPFiles(t *testing.T) []string {
	var files []string
	err := filepath.Walk("testdata", func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if info.Mode().IsRegular() && strings.HasSuffix(p, ".php") && filepath.Base(p) != "harness.php" && !strings.Contains(p, "invalid") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func evalFile(t *testing.T, path string) (*Scope, error) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return Eval(path, data, Env{File: resolveFile(path), ServerRoot: diffServerRoot})
}

func TestDifferentialTestdata(t *testing.T) {
	files := testdataPHPFiles(t)
	if len(files) < 10 {
		t.Fatalf("only %d testdata files", len(files))
	}
	// Once with no environment (every getenv() false), once with the
	// Docker image's variables set, so that both branches of its ifs run.
	envs := [][]string{nil, {"REDIS_HOST=redis", "REDIS_HOST_PORT=6380", "OBJECTSTORE_S3_BUCKET=b", "OBJECTSTORE_SWIFT_URL=http://s",
		"SMTP_HOST=mail", "MAIL_FROM_ADDRESS=nc", "MAIL_DOMAIN=example.org", "OVERWRITEHOST=cloud.example.org",
		"TRUSTED_PROXIES=10.0.0.1 10.0.0.2", "SQLITE_DATABASE=nc", "NC_TEST=1"}}
	for _, env := range envs {
		results := runPHP(t, env, files)
		if len(results) != len(files) {
			t.Fatalf("php printed %d results for %d files", len(results), len(files))
		}
		for i, f := range files {
			sc, err := evalFile(t, f)
			if results[i].Error != "" {
				if err == nil && strings.HasPrefix(results[i].Error, "ParseError") {
					t.Errorf("%s: PHP fails (%s), ours does not", f, results[i].Error)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s: ours fails (%v), PHP does not", f, err)
				continue
			}
			if d := compareScope(sc, results[i]); d != "" {
				t.Errorf("%s (env %v): %s", f, env, d)
			}
		}
	}
}

func TestDifferentialGenerated(t *testing.T) {
	dir := t.TempDir()
	var files []string
	for seed := range diffSeeds {
		g := &gen{r: rand.New(rand.NewPCG(uint64(seed), 0x70687063))}
		f := filepath.Join(dir, fmt.Sprintf("seed%03d.config.php", seed))
		if err := os.WriteFile(f, []byte(g.file()), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	results := runPHP(t, nil, files)
	if len(results) != len(files) {
		t.Fatalf("php printed %d results for %d files", len(results), len(files))
	}
	known := 0
	for i, f := range files {
		seed := i
		sc, err := evalFile(t, f)
		if results[i].Error != "" {
			// A parse error must be ours too; a run-time Error (PHP
			// stops there, so does Nextcloud) has nothing to compare.
			if err == nil && strings.HasPrefix(results[i].Error, "ParseError") {
				t.Errorf("seed %d: PHP fails (%s), ours does not", seed, results[i].Error)
			}
			continue
		}
		if err != nil {
			t.Errorf("seed %d: ours fails (%v), PHP does not", seed, err)
			continue
		}
		if d := compareScope(sc, results[i]); d != "" {
			src, _ := os.ReadFile(f)
			t.Errorf("seed %d: %s\n%s", seed, d, src)
		}
		if v, ok := sc.Var("CONFIG"); ok && v.kind == Array {
			known++
		}
	}
	// The generator must exercise the evaluator, not its UNKNOWN path.
	if known < diffSeeds/2 {
		t.Errorf("only %d of %d generated files evaluate to a known $CONFIG", known, diffSeeds)
	}
}

// gen writes random config files in the PHP subset real configs use, plus
// a little of what the evaluator must report as UNKNOWN.
type gen struct {
	r     *rand.Rand
	depth int
	vars  []string
}

func (g *gen) pick(s ...string) string { return s[g.r.IntN(len(s))] }

func (g *gen) file() string {
	var b strings.Builder
	b.WriteString(g.pick("<?php\n", "<?php ", "<?PHP\n", "<?php\r\n"))
	b.WriteString(g.comment())
	if g.r.IntN(4) > 0 {
		fmt.Fprintf(&b, "$CONFIG = %s;\n", g.array())
	}
	for range g.r.IntN(6) {
		b.WriteString(g.statement())
		b.WriteString(g.comment())
	}
	if g.r.IntN(4) == 0 {
		b.WriteString(g.pick("?>", "?>\n", "?>\r\n"))
	}
	return b.String()
}

func (g *gen) comment() string {
	switch g.r.IntN(6) {
	case 0:
		return "// a comment\n"
	case 1:
		return "# another ' \" comment\n"
	case 2:
		return "/* block\n comment */\n"
	}
	return ""
}

func (g *gen) statement() string {
	switch g.r.IntN(11) {
	case 0:
		return fmt.Sprintf("$CONFIG[%s] = %s;\n", g.key(), g.expr())
	case 1:
		return fmt.Sprintf("$CONFIG[%s][%s] = %s;\n", g.key(), g.key(), g.expr())
	case 2:
		return fmt.Sprintf("$CONFIG[] = %s;\n", g.expr())
	case 3:
		name := fmt.Sprintf("v%d", g.r.IntN(3))
		g.vars = append(g.vars, name)
		return fmt.Sprintf("$%s = %s;\n", name, g.expr())
	case 4:
		if len(g.vars) > 0 {
			return fmt.Sprintf("$CONFIG[%s] = $%s;\n", g.key(), g.vars[g.r.IntN(len(g.vars))])
		}
		return ";\n"
	case 5:
		return fmt.Sprintf("if (getenv('GEN_UNSET_%d')) {\n  $CONFIG[%s] = %s;\n} else {\n  $CONFIG[%s] = %s;\n}\n", g.r.IntN(9), g.key(), g.expr(), g.key(), g.expr())
	case 6:
		return fmt.Sprintf("if (getenv('GEN_UNSET')) {\n  $CONFIG = %s;\n}\n", g.array())
	case 7:
		return fmt.Sprintf("unset($CONFIG[%s]);\n", g.key())
	case 8:
		return fmt.Sprintf("$CONFIG[%s] = getenv('GEN_%d') ?: %s;\n", g.key(), g.r.IntN(5), g.expr())
	case 9:
		return fmt.Sprintf("$CONFIG[%s][] = %s;\n", g.key(), g.expr())
	}
	return fmt.Sprintf("$CONFIG = array_merge($CONFIG ?? [], %s);\n", g.array())
}

func (g *gen) array() string {
	g.depth++
	defer func() { g.depth-- }()
	n := g.r.IntN(6)
	if g.depth > 3 {
		n = g.r.IntN(2)
	}
	var parts []string
	for range n {
		if g.r.IntN(3) == 0 {
			parts = append(parts, g.expr())
		} else {
			parts = append(parts, g.key()+" => "+g.expr())
		}
	}
	body := strings.Join(parts, g.pick(", ", ",\n  ", " ,"))
	if n > 0 && g.r.IntN(3) == 0 {
		body += ","
	}
	if g.r.IntN(2) == 0 {
		return g.pick("array(", "array (", "ARRAY(", "Array (\n  ") + body + ")"
	}
	return "[" + body + "]"
}

func (g *gen) key() string {
	switch g.r.IntN(14) {
	case 0:
		return strconv.Itoa(g.r.IntN(5))
	case 1:
		return "'" + strconv.Itoa(g.r.IntN(5)) + "'"
	case 2:
		return g.pick(`"05"`, `'5.0'`, `'-3'`, `"-0"`, `' 1'`, `'+1'`, `'9223372036854775807'`, `'9223372036854775808'`, `'-9223372036854775808'`)
	case 3:
		return g.pick("true", "FALSE", "null", "Null")
	case 4:
		return g.pick("1.7", "-2.5", "0.0", "3.", "1e1")
	case 5:
		return g.pick("-1", "-7", "0x1F", "0b101", "0o7", "017", "1_000")
	case 6:
		return g.str()
	}
	return g.pick("'datadirectory'", "'apps_paths'", `"path"`, "'url'", "'a'", "'b'", "'integrity.check.disabled'", "'k'", "''")
}

func (g *gen) expr() string {
	g.depth++
	defer func() { g.depth-- }()
	if g.depth > 4 {
		return g.scalar()
	}
	switch g.r.IntN(12) {
	case 0, 1:
		return g.array()
	case 2:
		return g.concat()
	case 3:
		return "(" + g.expr() + ")"
	case 4:
		return g.pick("getenv('GEN_X')", "strtolower('ABC')", "PHP_INT_SIZE", "trim(' x ')", "1 + 2", "(int) '5'", "\"$undefinedvar\"", "<<<EOT\nheredoc\nEOT", "<<<'EOT'\nnowdoc\nEOT")
	}
	return g.scalar()
}

func (g *gen) concat() string {
	parts := []string{g.operand()}
	for range 1 + g.r.IntN(3) {
		parts = append(parts, g.operand())
	}
	return strings.Join(parts, g.pick(" . ", ".", " .\n "))
}

func (g *gen) operand() string {
	switch g.r.IntN(8) {
	case 0:
		return g.pick("OC::$SERVERROOT", "\\OC::$SERVERROOT", "oc::$SERVERROOT")
	case 1:
		return g.pick("__DIR__", "__dir__", "dirname(__DIR__)", "dirname(__DIR__, 2)", "dirname('/a/b/c', 5)", "dirname('a')", "dirname('/x//y/')")
	case 2:
		return g.pick("1", "-5", "true", "false", "null", "0x10")
	}
	return g.str()
}

func (g *gen) scalar() string {
	switch g.r.IntN(8) {
	case 0:
		return g.pick("0", "42", "-17", "0x7FFFFFFFFFFFFFFF", "9223372036854775807", "9223372036854775808", "-9223372036854775808", "0777", "0o17", "0O17", "0b1010", "0B1", "1_000_000", "0x_ff"[:0]+"0xff", "0")
	case 1:
		return g.pick("1.5", ".5", "1.", "1e3", "1E-3", "2.5e+2", "1_000.5", "-0.0", "1e400", "0.1")
	case 2:
		return g.pick("true", "false", "null", "TRUE", "False", "NULL")
	}
	return g.str()
}

func (g *gen) str() string {
	var b strings.Builder
	if g.r.IntN(2) == 0 {
		b.WriteByte('\'')
		for range g.r.IntN(6) {
			b.WriteString(g.pick("a", "Z", " ", `\\`, `\'`, `\n`, `\x41`, "$x", `"`, "é", "/", "\n", `\`))
		}
		s := b.String()
		if n := len(s) - len(strings.TrimRight(s, `\`)); n%2 == 1 {
			s += `\` // an odd run would escape the closing quote
		}
		return s + "'"
	}
	b.WriteByte('"')
	for range g.r.IntN(6) {
		b.WriteString(g.pick("a", " ", `\n`, `\t`, `\r`, `\v`, `\e`, `\f`, `\\`, `\$`, `\"`, `\0`, `\7`, `\101`, `\777`, `\400`, `\18`,
			`\x4`, `\x41`, `\xZ`, `\xfF`, `\u{41}`, `\u{1F600}`, `\u{D800}`, `\u{0000041}`, `\u`, `\q`, `\'`, "$1", "$ ", "{", "}", "'", "é", "\t"))
	}
	return b.String() + `"`
}

// TestDifferentialLoad builds config directories of several generated
// files (names chosen to exercise natsort) and compares Load's merged
// configuration with what readData's steps build in real PHP, with
// array_merge (Nextcloud 32) and array_replace_recursive (33).
func TestDifferentialLoad(t *testing.T) {
	for _, tc := range []struct {
		major int
		flag  string
	}{{32, "--load"}, {33, "--load-replace"}} {
		t.Run(fmt.Sprint(tc.major), func(t *testing.T) { differentialLoad(t, tc.major, tc.flag) })
	}
}

func differentialLoad(t *testing.T, major int, flag string) {
	php := needPHP(t)
	names := []string{"config.php", "a.config.php", "a2.config.php", "a10.config.php", "b 1.config.php", "B.config.php", "x01.config.php", "x1.config.php", "z.config.php"}
	var dirs []string
	root := t.TempDir()
	if k := os.Getenv("PHPCONF_KEEP"); k != "" {
		root = filepath.Join(k, flag)
		os.MkdirAll(root, 0o755)
	}
	const nDirs = 60
	for seed := range nDirs {
		r := rand.New(rand.NewPCG(uint64(seed), 0x6c6f6164))
		dir := filepath.Join(root, fmt.Sprintf("seed%02d", seed))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if r.IntN(3) == 0 {
				continue
			}
			g := &gen{r: r}
			src := g.file()
			if r.IntN(3) == 0 && !strings.Contains(src, "?>") {
				// a variable set by one file, read by the next
				src += "\n$shared = 'from ' . " + strconv.Quote(n) + ";\n$CONFIG['shared'] = $shared ?? 'none';\n"
			}
			if err := os.WriteFile(filepath.Join(dir, n), []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		dirs = append(dirs, dir)
	}
	var lines []string
	for i := 0; i < len(dirs); i += 50 {
		cmd := exec.Command(php, "-d", "display_errors=0", "-d", "log_errors=0", "-d", "opcache.enable_cli=0", filepath.Join("testdata", "harness.php"), flag)
		cmd.Args = append(cmd.Args, dirs[i:min(i+50, len(dirs))]...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		out, err := cmd.Output()
		if err != nil {
			// A PHP fatal error (not an exception: "memory exhausted" on
			// a string offset write at PHP_INT_MAX) kills the batch: run
			// its directories one by one.
			out = nil
			for _, d := range dirs[i:min(i+50, len(dirs))] {
				c := exec.Command(php, "-d", "display_errors=0", "-d", "log_errors=0", filepath.Join("testdata", "harness.php"), flag, d)
				o, err := c.Output()
				if err != nil {
					t.Logf("%s: php died (%v): skipped", d, err)
					o = []byte(`{"error":"php died"}` + "\n")
				}
				out = append(out, o...)
			}
		}
		lines = append(lines, strings.Split(strings.TrimSpace(string(out)), "\n")...)
	}
	if len(lines) != len(dirs) {
		t.Fatalf("php printed %d lines for %d dirs", len(lines), len(dirs))
	}
	compared := 0
	for i, dir := range dirs {
		var r struct {
			Files []string        `json:"files"`
			Cache json.RawMessage `json:"cache"`
			Error string          `json:"error"`
		}
		d := json.NewDecoder(strings.NewReader(lines[i]))
		d.UseNumber()
		if err := d.Decode(&r); err != nil {
			t.Fatal(err)
		}
		c, err := Load(dir, diffServerRoot, major)
		if r.Error != "" {
			if err == nil && strings.HasPrefix(r.Error, "ParseError") {
				t.Errorf("seed %d: PHP fails (%s), ours does not", i, r.Error)
			}
			continue
		}
		if err != nil {
			t.Errorf("seed %d: ours fails (%v), PHP does not", i, err)
			continue
		}
		var got []string
		for _, f := range c.Files() {
			got = append(got, filepath.Base(f))
		}
		if strings.Join(got, "|") != strings.Join(r.Files, "|") {
			t.Errorf("seed %d: files %q, PHP read %q", i, got, r.Files)
		}
		pv, err := decodePHP(r.Cache)
		if err != nil {
			t.Fatal(err)
		}
		if diff := agree("config", Value{kind: Array, a: c.data}, pv); diff != "" {
			t.Errorf("seed %d: %s", i, diff)
			if os.Getenv("PHPCONF_DEBUG") != "" {
				for _, f := range c.Files() {
					b, _ := os.ReadFile(f)
					t.Logf("== %s\n%s", filepath.Base(f), b)
				}
				t.Logf("ours: %s", dump(Value{kind: Array, a: c.data}))
			}
		}
		compared++
	}
	if compared < nDirs/2 {
		t.Errorf("only %d of %d directories compared", compared, nDirs)
	}
}
