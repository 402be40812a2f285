package phpconf

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// MaxFileSize bounds every file this package reads.
const MaxFileSize = 4 << 20

// readFile reads a regular file of at most MaxFileSize bytes. It opens
// with O_NONBLOCK so that a FIFO cannot block, then requires a regular
// file.
//
// It reads under a shared lock, as \OC\Config::readData does: Nextcloud
// rewrites config.php in place (truncate, then write) under an exclusive
// flock, and a read without the lock can see it empty or half written.
// The lock is waited for at most lockWait: whoever can open the file can
// hold a lock on it for ever, and that must not stop the daemon from
// reading it (then it reads without, and a torn read is an error the
// caller retries).
func readFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "read", Path: path, Err: errors.New("not a regular file")}
	}
	if sharedLock(int(f.Fd())) {
		defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	}
	if st.Size() > MaxFileSize {
		return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("larger than %d bytes", MaxFileSize)}
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: path, Err: err}
	}
	if len(data) > MaxFileSize {
		return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("larger than %d bytes", MaxFileSize)}
	}
	return data, nil
}

// lockWait bounds how long readFile waits for a writer's lock.
const lockWait = 500 * time.Millisecond

// sharedLock takes a shared flock on fd, waiting at most lockWait for an
// exclusive one to go, and reports whether it has it.
func sharedLock(fd int) bool {
	deadline := time.Now().Add(lockWait)
	for pause := time.Millisecond; ; pause = min(2*pause, 20*time.Millisecond) {
		err := syscall.Flock(fd, syscall.LOCK_SH|syscall.LOCK_NB)
		if err == nil {
			return true
		}
		if err != syscall.EWOULDBLOCK && err != syscall.EINTR || time.Now().After(deadline) {
			return false
		}
		time.Sleep(pause)
	}
}

// Config is Nextcloud's system configuration as \OC\Config holds it.
type Config struct {
	files      []string
	data       *Arr
	serverRoot string
}

// UnknownError is a key whose value cannot be known without running PHP.
type UnknownError struct {
	Key    string
	Reason *Reason
	Hint   string // what the admin can do instead, may be empty
}

func (e *UnknownError) Error() string {
	s := fmt.Sprintf("config key %q cannot be read without running PHP: %s", e.Key, e.Reason)
	if e.Hint != "" {
		s += "; " + e.Hint
	}
	return s
}

// ReplaceRecursiveSince is the first Nextcloud major release whose
// \OC\Config::readData merges the files with array_replace_recursive
// (33 and 34 do: in real 33.0.0 and 34.0.1 trees a third apps_paths entry
// of config.php survives the official image's apps.config.php); earlier
// ones use array_merge, where a file's key replaces the whole value of the
// files before (nextcloud/server's lib/private/Config.php of 2024, SPDX
// 2016-2024: "$this->cache = array_merge($this->cache, $CONFIG)"). Which
// of 32's releases changed is not known here: 32 is taken as array_merge.
const ReplaceRecursiveSince = 33

// Load reads Nextcloud's configuration as \OC\Config::readData of the
// Nextcloud major release major (0: unknown, the newest rules) does:
// configDir/config.php (skipped when it does not exist, as Nextcloud skips
// it when it cannot open it), then every configDir/*.config.php in PHP's
// natsort order, merged with array_merge before ReplaceRecursiveSince and
// array_replace_recursive from it. The files share one scope (the
// method's) in which $CONFIG is unset before each file.
// serverRoot is OC::$SERVERROOT. A file that cannot be read is an error:
// Nextcloud dies on an unreadable *.config.php ("Could not open the config
// file"), and a config.php that exists but that this process cannot read
// may well be readable by Nextcloud.
func Load(configDir, serverRoot string, major int) (*Config, error) {
	c := &Config{data: newArr(), serverRoot: resolveRoot(serverRoot)}
	main := filepath.Join(configDir, "config.php")
	files := []string{main}
	extra, err := filepath.Glob(filepath.Join(globEscape(configDir), "*.config.php"))
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", configDir, err)
	}
	var visible []string
	for _, f := range extra {
		if !strings.HasPrefix(filepath.Base(f), ".") { // glob(3): '*' does not match a leading dot
			visible = append(visible, f)
		}
	}
	sort.Strings(visible)
	sort.SliceStable(visible, func(i, j int) bool { return strnatcmp(visible[i], visible[j]) < 0 })
	files = append(files, visible...)
	var next int64
	// readData includes every file from the same method: they share one
	// scope, and only $CONFIG is unset before each.
	sc := newScope()
	for _, f := range files {
		data, err := readFile(f)
		if err != nil {
			if f == main && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("read config: %w", err)
		}
		sc.unset("CONFIG")
		if err := evalIn(sc, f, data, Env{File: resolveFile(f), ServerRoot: c.serverRoot}); err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		c.files = append(c.files, f)
		v, _ := sc.Var("CONFIG")
		if major == 0 || major >= ReplaceRecursiveSince {
			replaceRecursive(c.data, v)
		} else {
			merge(c.data, v, &next)
		}
	}
	return c, nil
}

func globEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`)
	return r.Replace(s)
}

// resolveFile is __FILE__: PHP resolves symbolic links.
func resolveFile(f string) string {
	abs, err := filepath.Abs(f)
	if err != nil {
		return ""
	}
	r, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return ""
	}
	return r
}

// resolveRoot is OC::$SERVERROOT as lib/base.php computes it: the parent
// of lib/'s resolved path.
func resolveRoot(root string) string {
	if root == "" {
		return ""
	}
	if r, err := filepath.EvalSymlinks(filepath.Join(root, "lib")); err == nil {
		return filepath.Dir(r)
	}
	if r, err := filepath.EvalSymlinks(root); err == nil {
		return r
	}
	return root
}

// merge is `$cache = array_merge($cache, $CONFIG)` when $CONFIG is an
// array: string keys replace in place, int keys are appended renumbered.
func merge(dst *Arr, v Value, next *int64) {
	switch v.kind {
	case Unknown:
		dst.openUp(v.r)
		return
	case Array:
	default:
		return // not set or not an array: the file contributes nothing
	}
	if v.a.open != nil {
		dst.openUp(v.a.open)
	}
	dst.orderUnknown = firstReason(dst.orderUnknown, v.a.orderUnknown)
	if r := firstReason(v.a.open, v.a.nextUnknown); r != nil {
		// int keys may be hidden: the renumbering is no longer known
		dst.nextUnknown = firstReason(dst.nextUnknown, r)
	}
	for i, k := range v.a.keys {
		val := share(v.a.vals[i])
		if k.IsInt {
			if dst.open == nil && dst.nextUnknown == nil {
				dst.set(Key{IsInt: true, I: *next}, val)
				*next++
				if val.kind == Unknown {
					// it may be absent: the keys after it are not known
					dst.nextUnknown = val.r
				}
			}
			continue
		}
		if keepsKnown(dst, k, val) {
			continue
		}
		dst.set(k, val)
	}
}

// keepsKnown reports whether merging val (an entry either absent or equal
// to dst's entry k) leaves dst's known value as it is.
func keepsKnown(dst *Arr, k Key, val Value) bool {
	if val.kind != Unknown || val.orAbsent == nil {
		return false
	}
	cur, ok := dst.Get(k)
	return ok && sameKnown(cur, *val.orAbsent)
}

// replaceRecursive is dst = array_replace_recursive(dst, v) when v is an
// array (readData's is_array($CONFIG)): every key of v replaces dst's, in
// place (int keys are not renumbered), except that where both are arrays
// the two are replaced recursively, keeping dst's other keys.
func replaceRecursive(dst *Arr, v Value) {
	switch v.kind {
	case Unknown:
		dst.openUp(v.r)
		return
	case Array:
	default:
		return
	}
	if v.a.open != nil {
		dst.openUp(v.a.open)
	}
	dst.orderUnknown = firstReason(dst.orderUnknown, v.a.orderUnknown)
	for i, k := range v.a.keys {
		val := share(v.a.vals[i])
		cur, ok := dst.Get(k)
		switch {
		case keepsKnown(dst, k, val):
		case ok && cur.kind == Array && val.kind == Array:
			sub := cur.a.clone()
			replaceRecursive(sub, val)
			dst.set(k, Value{kind: Array, a: sub})
		case ok && cur.kind == Unknown && val.kind == Array:
			// array or not, the result depends on the value not known
			dst.set(k, cur)
		default:
			dst.set(k, val)
		}
	}
}

// Files lists the files read, in the order read.
func (c *Config) Files() []string { return append([]string(nil), c.files...) }

// Value is the value of a system config key as getValue sees it, without
// the NC_* environment overrides; found is false when the key is absent or
// null (Nextcloud's isset()). An UNKNOWN value is returned as found.
func (c *Config) Value(key string) (v Value, found bool) {
	v, ok := c.data.Get(StrKey(key))
	if !ok || v.kind == Null {
		return Value{}, false
	}
	return v, true
}

// String returns a key's value when it is a string; ok is false when it is
// absent (or null), err an *UnknownError when it cannot be known or a
// description when it is not a string.
func (c *Config) String(key string) (value string, ok bool, err error) {
	v, found := c.Value(key)
	if !found {
		return "", false, nil
	}
	if v.kind == Unknown {
		return "", false, &UnknownError{Key: key, Reason: v.r}
	}
	s, isStr := v.Str()
	if !isStr {
		return "", false, fmt.Errorf("config key %q is a %s, not a string", key, v.kind)
	}
	return s, true, nil
}

// AppsPath is one entry of apps_paths that Nextcloud uses.
type AppsPath struct {
	Path     string
	URL      string
	Writable bool
}

const appsHint = "set apps_path in integrityd's configuration (/etc/integrityd/integrityd.conf) or pass --apps-path"

// AppsPaths returns the entries of apps_paths that Nextcloud's lib/base.php
// uses: those with both 'path' and 'url' set (isset), with trailing '/'
// trimmed. nil when apps_paths is empty or absent: Nextcloud then uses
// SERVERROOT/apps when it exists.
func (c *Config) AppsPaths() ([]AppsPath, error) {
	v, found := c.Value("apps_paths")
	unknownErr := func(key string, r *Reason) error {
		return &UnknownError{Key: key, Reason: r, Hint: appsHint}
	}
	if !found {
		return nil, nil
	}
	if v.kind == Unknown {
		return nil, unknownErr("apps_paths", v.r)
	}
	if empty, ok := v.Truthy(); !ok {
		return nil, unknownErr("apps_paths", v.a.open)
	} else if !empty {
		return nil, nil // empty(): Nextcloud falls back to SERVERROOT/apps
	}
	a, ok := v.Arr()
	if !ok {
		return nil, fmt.Errorf("config key \"apps_paths\" is a %s, not an array (Nextcloud finds no apps directory)", v.kind)
	}
	if a.open != nil {
		return nil, unknownErr("apps_paths", a.open)
	}
	if a.orderUnknown != nil {
		return nil, unknownErr("apps_paths (the order of its entries)", a.orderUnknown)
	}
	var out []AppsPath
	for i := range a.keys {
		name := "apps_paths[" + a.keys[i].String() + "]"
		ent := a.vals[i]
		if ent.kind == Unknown {
			return nil, unknownErr(name, ent.r)
		}
		ea, ok := ent.Arr()
		if !ok {
			continue // isset($str['url']) is false
		}
		var got [2]string
		skip := false
		for j, field := range []string{"path", "url"} {
			fv, present := ea.Get(Key{S: field})
			if !present || fv.kind == Null {
				skip = true
				break
			}
			if fv.kind == Unknown {
				return nil, unknownErr(name+"['"+field+"']", fv.r)
			}
			s, isStr := toStrPlain(fv)
			if !isStr {
				return nil, fmt.Errorf("config key %s['%s'] is a %s, not a string", name, field, fv.kind)
			}
			got[j] = strings.TrimRight(s, "/")
		}
		if skip {
			continue
		}
		ap := AppsPath{Path: got[0], URL: got[1]}
		if w, present := ea.Get(Key{S: "writable"}); present {
			ap.Writable, _ = w.Truthy()
		}
		out = append(out, ap)
	}
	return out, nil
}

// toStrPlain is rtrim()'s string conversion of a scalar.
func toStrPlain(v Value) (string, bool) {
	switch v.kind {
	case String, Int, Bool:
		s, _, ok := toStr(v, "", 0)
		return s, ok
	}
	return "", false
}

// DataDir returns datadirectory, or SERVERROOT/data when it is not set, as
// Nextcloud defaults it.
func (c *Config) DataDir() (string, error) {
	v, found := c.Value("datadirectory")
	if !found {
		if c.serverRoot == "" {
			return "", errors.New("datadirectory is not set and the server root is not known")
		}
		return filepath.Join(c.serverRoot, "data"), nil
	}
	if v.kind == Unknown {
		return "", &UnknownError{Key: "datadirectory", Reason: v.r,
			Hint: "set data_dir in integrityd's configuration (/etc/integrityd/integrityd.conf) or pass --data-dir"}
	}
	s, ok := toStrPlain(v)
	if !ok {
		return "", fmt.Errorf("config key \"datadirectory\" is a %s, not a string", v.kind)
	}
	return s, nil
}

// BoolCastSince is the first Nextcloud major whose integrity Checker reads
// integrity.check.disabled with getSystemValueBool (PHP's (bool) cast);
// before it, only the boolean true disables the check
// (getSystemValue(...) === true).
//
// 25.0.12 compares with === true; 33.0.0 casts. A Checker with the cast
// that still reads the channel from EnvironmentHelper and already stores
// its results as a lazy app config value (nextcloud/server#43907, merged
// for 29) shows the cast was there in 29; the versions 26 to 28 were not
// found. 29 errs on the side of checking: where the real change came
// earlier, a string such as 'true' is read as not disabling the check.
const BoolCastSince = 29

// IntegrityCheckDisabled reports whether integrity.check.disabled disables
// the integrity check, as the Checker of Nextcloud major version major
// reads it.
func (c *Config) IntegrityCheckDisabled(major int) (bool, error) {
	const key = "integrity.check.disabled"
	v, found := c.Value(key)
	if !found {
		return false, nil
	}
	if v.kind == Unknown {
		return false, &UnknownError{Key: key, Reason: v.r}
	}
	if major < BoolCastSince {
		b, ok := v.BoolValue()
		return ok && b, nil
	}
	t, ok := v.Truthy()
	if !ok {
		return false, &UnknownError{Key: key, Reason: v.a.open}
	}
	return t, nil
}

// Version is what version.php declares.
type Version struct {
	Version       []int  // $OC_Version
	VersionString string // $OC_VersionString
	Channel       string // $OC_Channel
}

// LoadVersion reads a version.php. A missing file is an error wrapping
// fs.ErrNotExist.
func LoadVersion(path string) (*Version, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("read version: %w", err)
	}
	sc, err := Eval(path, data, Env{File: resolveFile(path)})
	if err != nil {
		return nil, fmt.Errorf("read version: %w", err)
	}
	str := func(name string) (string, error) {
		v, ok := sc.Var(name)
		if !ok {
			return "", fmt.Errorf("read version: %s does not set $%s", path, name)
		}
		if v.kind == Unknown {
			return "", fmt.Errorf("read version: $%s cannot be read without running PHP: %s", name, v.r)
		}
		s, isStr := v.Str()
		if !isStr {
			return "", fmt.Errorf("read version: %s: $%s is a %s, not a string", path, name, v.kind)
		}
		return s, nil
	}
	var out Version
	if out.VersionString, err = str("OC_VersionString"); err != nil {
		return nil, err
	}
	if out.Channel, err = str("OC_Channel"); err != nil {
		return nil, err
	}
	v, ok := sc.Var("OC_Version")
	if !ok {
		return nil, fmt.Errorf("read version: %s does not set $OC_Version", path)
	}
	if v.kind == Unknown {
		return nil, fmt.Errorf("read version: $OC_Version cannot be read without running PHP: %s", v.r)
	}
	a, isArr := v.Arr()
	if !isArr || a.open != nil {
		return nil, fmt.Errorf("read version: %s: $OC_Version is not a list of integers", path)
	}
	for i := range a.keys {
		n, isInt := a.vals[i].Int()
		if !isInt || !a.keys[i].IsInt || a.keys[i].I != int64(i) {
			return nil, fmt.Errorf("read version: %s: $OC_Version is not a list of integers", path)
		}
		out.Version = append(out.Version, int(n))
	}
	return &out, nil
}

// strnatcmp is PHP's strnatcmp_ex without case folding (natsort).
func strnatcmp(a, b string) int {
	if a == "" || b == "" {
		switch {
		case len(a) == len(b):
			return 0
		case len(a) > len(b):
			return 1
		}
		return -1
	}
	at := func(s string, i int) byte {
		if i < len(s) {
			return s[i]
		}
		return 0
	}
	isDigit := func(c byte) bool { return c >= '0' && c <= '9' }
	isSpace := func(c byte) bool { return c == ' ' || (c >= '\t' && c <= '\r') }
	ap, bp := 0, 0
	leading := true
	for {
		ca, cb := at(a, ap), at(b, bp)
		for leading && ca == '0' && ap+1 < len(a) && isDigit(a[ap+1]) {
			ap++
			ca = at(a, ap)
		}
		for leading && cb == '0' && bp+1 < len(b) && isDigit(b[bp+1]) {
			bp++
			cb = at(b, bp)
		}
		leading = false
		for isSpace(ca) {
			ap++
			ca = at(a, ap)
		}
		for isSpace(cb) {
			bp++
			cb = at(b, bp)
		}
		if isDigit(ca) && isDigit(cb) {
			var r int
			if ca == '0' || cb == '0' {
				r = compareLeft(a, &ap, b, &bp)
			} else {
				r = compareRight(a, &ap, b, &bp)
			}
			if r != 0 {
				return r
			}
			switch {
			case ap == len(a) && bp == len(b):
				return 0
			case ap == len(a):
				return -1
			case bp == len(b):
				return 1
			}
			ca, cb = at(a, ap), at(b, bp)
		}
		if ca < cb {
			return -1
		}
		if ca > cb {
			return 1
		}
		ap++
		bp++
		switch {
		case ap >= len(a) && bp >= len(b):
			return 0
		case ap >= len(a):
			return -1
		case bp >= len(b):
			return 1
		}
	}
}

func natDigit(s string, i int) bool { return i < len(s) && s[i] >= '0' && s[i] <= '9' }

func compareRight(a string, ap *int, b string, bp *int) int {
	bias := 0
	for ; ; *ap, *bp = *ap+1, *bp+1 {
		da, db := natDigit(a, *ap), natDigit(b, *bp)
		switch {
		case !da && !db:
			return bias
		case !da:
			return -1
		case !db:
			return 1
		case a[*ap] < b[*bp]:
			if bias == 0 {
				bias = -1
			}
		case a[*ap] > b[*bp]:
			if bias == 0 {
				bias = 1
			}
		}
	}
}

func compareLeft(a string, ap *int, b string, bp *int) int {
	for ; ; *ap, *bp = *ap+1, *bp+1 {
		da, db := natDigit(a, *ap), natDigit(b, *bp)
		switch {
		case !da && !db:
			return 0
		case !da:
			return -1
		case !db:
			return 1
		case a[*ap] < b[*bp]:
			return -1
		case a[*ap] > b[*bp]:
			return 1
		}
	}
}

// ServerVersionSince is the first Nextcloud major whose channel comes from
// OCP\ServerVersion::getChannel: updater.release.channel is taken only when
// it is one of beta, stable, enterprise, git (getSystemValueString), else
// version.php's $OC_Channel. Before it, OC_Util::getChannel returns
// getSystemValue('updater.release.channel', $OC_Channel) as it is.
const ServerVersionSince = 31

// Channel is the release channel Nextcloud's Checker sees (it enforces the
// check unless the channel is "" or "git"). A value of updater.release.channel
// that is not a string is returned as "(KIND value)" for Nextcloud < 31,
// which compares it strictly and so enforces the check.
func (c *Config) Channel(v *Version) (string, error) {
	const key = "updater.release.channel"
	val, found := c.Value(key)
	if !found {
		return v.Channel, nil
	}
	if val.kind == Unknown {
		return "", &UnknownError{Key: key, Reason: val.r}
	}
	s, isStr := val.Str()
	if len(v.Version) > 0 && v.Version[0] >= ServerVersionSince {
		switch s {
		case "beta", "stable", "enterprise", "git":
			if isStr {
				return s, nil
			}
		}
		return v.Channel, nil
	}
	if !isStr {
		return "(" + val.kind.String() + " value)", nil
	}
	return s, nil
}
