package phpcompat

import (
	"strconv"
	"strings"
)

// VersionCompare is PHP's version_compare($a, $b) without an operator:
// -1, 0 or 1. Nextcloud uses it to choose among copies of an app found in
// several apps roots (OC_App::findAppInDirectories), so it must order
// versions exactly as PHP does: "1.0rc1" < "1.0" < "1.0.0" < "1.0pl1",
// unknown words before "dev", "" before everything.
func VersionCompare(a, b string) int { return versionCompare(a, b, 0) }

// versionCompare is php_version_compare, step for step (p1, n1... are
// offsets into the canonical strings; n1ok is n1 != NULL).
func versionCompare(a, b string, depth int) int {
	if a == "" || b == "" {
		switch {
		case a == b:
			return 0
		case a != "":
			return 1
		}
		return -1
	}
	// Strings that start with "#" (PHP's "#N#" number marker) are not
	// canonicalised.
	v1, v2 := a, b
	if a[0] != '#' {
		v1 = canonVersion(a)
	}
	if b[0] != '#' {
		v2 = canonVersion(b)
	}
	p1, p2 := 0, 0
	n1ok, n2ok := true, true
	compare := 0
	for p1 < len(v1) && p2 < len(v2) && n1ok && n2ok {
		s1, e1 := v1[p1:], strings.IndexByte(v1[p1:], '.')
		if n1ok = e1 >= 0; n1ok {
			s1 = s1[:e1]
		}
		s2, e2 := v2[p2:], strings.IndexByte(v2[p2:], '.')
		if n2ok = e2 >= 0; n2ok {
			s2 = s2[:e2]
		}
		d1, d2 := isDigitStart(s1), isDigitStart(s2)
		switch {
		case d1 && d2:
			compare = cmpInt(phpStrtol(s1), phpStrtol(s2))
		case !d1 && !d2:
			compare = cmpInt(specialForm(s1), specialForm(s2))
		case d1:
			compare = cmpInt(specialForm("#N#"), specialForm(s2))
		default:
			compare = cmpInt(specialForm(s1), specialForm("#N#"))
		}
		if compare != 0 {
			break
		}
		if n1ok {
			p1 += e1 + 1
		}
		if n2ok {
			p2 += e2 + 1
		}
	}
	if compare != 0 || depth > 64 {
		return compare
	}
	switch {
	case n1ok:
		if isDigitStart(v1[p1:]) {
			return 1
		}
		return versionCompare(v1[p1:], "#N#", depth+1)
	case n2ok:
		if isDigitStart(v2[p2:]) {
			return -1
		}
		return versionCompare("#N#", v2[p2:], depth+1)
	}
	return 0
}

// canonVersion is php_canonicalize_version: "-", "_" and "+" become ".",
// a "." goes between a digit and a non-digit, other non-alphanumerics
// become "." (never two in a row).
func canonVersion(v string) string {
	var b strings.Builder
	b.WriteByte(v[0])
	lp := v[0]
	last := func() byte { s := b.String(); return s[len(s)-1] }
	isdig := func(c byte) bool { return c >= '0' && c <= '9' }
	isndig := func(c byte) bool { return !isdig(c) && c != '.' }
	isalnum := func(c byte) bool { return isdig(c) || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	for i := 1; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '-' || c == '_' || c == '+':
			if last() != '.' {
				b.WriteByte('.')
			}
		case isndig(lp) && isdig(c) || isdig(lp) && isndig(c):
			if last() != '.' {
				b.WriteByte('.')
			}
			b.WriteByte(c)
		case !isalnum(c):
			if last() != '.' {
				b.WriteByte('.')
			}
		default:
			b.WriteByte(c)
		}
		lp = c
	}
	return b.String()
}

func isDigitStart(s string) bool { return s != "" && s[0] >= '0' && s[0] <= '9' }

// phpStrtol is strtol(s, NULL, 10) on a part that starts with a digit.
func phpStrtol(s string) int64 {
	end := 0
	for end < len(s) && s[end] >= '0' && s[end] <= '9' {
		end++
	}
	n, err := strconv.ParseInt(s[:end], 10, 64)
	if err != nil { // overflow: strtol saturates
		return 1<<63 - 1
	}
	return n
}

// specialForm is compare_special_version_forms' order; a form matches when
// it starts with the part (strncmp(form, name, strlen(name))).
func specialForm(s string) int {
	for _, f := range []struct {
		name  string
		order int
	}{{"dev", 0}, {"alpha", 1}, {"a", 1}, {"beta", 2}, {"b", 2}, {"RC", 3}, {"rc", 3}, {"#", 4}, {"pl", 5}, {"p", 5}} {
		if strings.HasPrefix(s, f.name) {
			return f.order
		}
	}
	return -1
}

func cmpInt[T int | int64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
