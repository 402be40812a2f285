package phpcompat

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file re-creates, byte for byte, what Nextcloud signs: PHP's
// json_encode($hashes) after ksort($hashes), where $hashes came from
// json_decode(..., true). Three PHP behaviours matter:
//
//   - array keys that look like decimal integers become integer keys
//     (ZEND_HANDLE_NUMERIC_STR), which changes how they sort;
//   - ksort (SORT_REGULAR, PHP 8) compares keys with PHP's loose comparison,
//     which is numeric between numeric strings and not always transitive, so
//     the result depends on the sort algorithm itself: we run zend_sort's
//     hybrid insertion sort / quicksort step for step, with PHP 8's stable
//     tie-break on the original position;
//   - json_encode escapes "/" and every non-ASCII code point, and writes a
//     list ([...]) instead of an object when the keys are exactly 0..n-1.

// Key is a PHP array key: an integer or a string.
type Key struct {
	Str   string // the key as PHP would print it
	IsInt bool   // an integer key, of value Int
	Int   int64
	Pos   int // insertion position, PHP 8's stable-sort tie-break
}

// Entry is one element of a PHP array of strings (a manifest's hashes).
type Entry struct {
	Key   Key
	Value string
}

// NewKey converts a decoded JSON object key the way PHP does when it is
// used as an array key. Its Pos is 0: the caller sets it.
func NewKey(s string) Key {
	if i, ok := handleNumericStr(s); ok {
		return Key{Str: strconv.FormatInt(i, 10), IsInt: true, Int: i}
	}
	return Key{Str: s}
}

// handleNumericStr reports whether PHP turns the array key s into an
// integer key, and which integer. It follows _zend_handle_numeric_str_ex.
func handleNumericStr(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	t := s
	neg := t[0] == '-'
	if neg {
		t = t[1:]
	}
	if t == "" || t[0] < '0' || t[0] > '9' {
		return 0, false
	}
	if t[0] == '0' && len(s) > 1 { // leading zero, "-0"
		return 0, false
	}
	for i := 0; i < len(t); i++ {
		if t[i] < '0' || t[i] > '9' {
			return 0, false
		}
	}
	if len(t) > 19 { // MAX_LENGTH_OF_LONG - 1
		return 0, false
	}
	u, err := strconv.ParseUint(t, 10, 64)
	if neg {
		// Below PHP_INT_MIN the key stays a string (checked with PHP 8.2).
		if err != nil || u > 1<<63 {
			return 0, false
		}
		return -int64(u), true
	}
	if err != nil || u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}

// numericString is the result of PHP 8's is_numeric_string_ex with
// allow_errors=false.
type numericString struct {
	kind  byte // 0: not numeric, 'l': integer, 'd': double
	l     int64
	d     float64
	oflow int // -1 or 1 when an integer-looking string overflowed
}

func isWhitespace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// parseNumeric follows _is_numeric_string_ex (PHP 8): leading and trailing
// whitespace allowed, optional sign, decimal digits, optional fraction and
// exponent; nothing else.
func parseNumeric(s string) numericString {
	i := 0
	for i < len(s) && isWhitespace(s[i]) {
		i++
	}
	end := len(s)
	for end > i && isWhitespace(s[end-1]) {
		end--
	}
	body := s[i:end]
	if body == "" {
		return numericString{}
	}
	p := 0
	neg := false
	if body[p] == '-' || body[p] == '+' {
		neg = body[p] == '-'
		p++
	}
	isDouble := false
	digits := 0
	switch {
	case p < len(body) && isDigit(body[p]):
		for p < len(body) && body[p] == '0' {
			p++
		}
		for p < len(body) && isDigit(body[p]) {
			p++
			digits++
		}
		if p < len(body) && body[p] == '.' {
			isDouble = true
			p++
			for p < len(body) && isDigit(body[p]) {
				p++
			}
		}
		if p < len(body) && (body[p] == 'e' || body[p] == 'E') {
			q := p + 1
			if q < len(body) && (body[q] == '-' || body[q] == '+') {
				q++
			}
			if q < len(body) && isDigit(body[q]) {
				isDouble = true
				p = q
				for p < len(body) && isDigit(body[p]) {
					p++
				}
			}
		}
	case p+1 < len(body) && body[p] == '.' && isDigit(body[p+1]):
		isDouble = true
		p++
		for p < len(body) && isDigit(body[p]) {
			p++
		}
		if p < len(body) && (body[p] == 'e' || body[p] == 'E') {
			q := p + 1
			if q < len(body) && (body[q] == '-' || body[q] == '+') {
				q++
			}
			if q < len(body) && isDigit(body[q]) {
				p = q
				for p < len(body) && isDigit(body[p]) {
					p++
				}
			}
		}
	default:
		return numericString{}
	}
	if p != len(body) {
		return numericString{}
	}
	d, _ := strconv.ParseFloat(body, 64) // ±Inf on overflow, like zend_strtod
	oflow := 1
	if neg {
		oflow = -1
	}
	if digits >= 20 { // MAX_LENGTH_OF_LONG: PHP flags overflow even with a fraction
		return numericString{kind: 'd', d: d, oflow: oflow}
	}
	if isDouble {
		return numericString{kind: 'd', d: d}
	}
	intDigits := body[p-digits : p]
	if digits == 19 {
		// PHP strcmp()s the rest of the C string, trailing whitespace
		// included, with "9223372036854775808".
		rest := s[i+p-digits:]
		c := strings.Compare(rest, "9223372036854775808")
		if !(c < 0 || (c == 0 && neg)) {
			return numericString{kind: 'd', d: d, oflow: oflow}
		}
	}
	if digits == 0 {
		return numericString{kind: 'l'}
	}
	u, _ := strconv.ParseUint(intDigits, 10, 64) // < 2^63+1 here
	v := int64(u)
	if neg {
		v = -v // -2^63 wraps to itself, as in C
	}
	return numericString{kind: 'l', l: v}
}

// IsNumeric reports whether PHP 8 takes s for a numeric string
// (is_numeric_string: "12", " 1.5e3 ", but not "1a" or "0x1A"), so that
// comparing it with another numeric string compares numbers.
func IsNumeric(s string) bool { return parseNumeric(s).kind != 0 }

func sign(c int) int {
	switch {
	case c < 0:
		return -1
	case c > 0:
		return 1
	}
	return 0
}

func cmpFloat(a, b float64) int {
	d := a - b
	switch {
	case d > 0:
		return 1
	case d < 0:
		return -1
	}
	return 0
}

// smartStrcmp is zendi_smart_strcmp: numeric comparison when both strings
// are numeric, binary comparison otherwise.
func smartStrcmp(a, b string) int {
	na := parseNumeric(a)
	if na.kind != 0 {
		nb := parseNumeric(b)
		if nb.kind != 0 {
			if !(na.oflow != 0 && na.oflow == nb.oflow && na.d-nb.d == 0) {
				if na.kind == 'd' || nb.kind == 'd' {
					da, db := na.d, nb.d
					switch {
					case na.kind != 'd':
						if nb.oflow != 0 {
							return -nb.oflow
						}
						da = float64(na.l)
					case nb.kind != 'd':
						if na.oflow != 0 {
							return na.oflow
						}
						db = float64(nb.l)
					case da == db && (math.IsInf(da, 0) || math.IsNaN(da)):
						return sign(bytesCompare(a, b))
					}
					return cmpFloat(da, db)
				}
				switch {
				case na.l > nb.l:
					return 1
				case na.l < nb.l:
					return -1
				}
				return 0
			}
		}
	}
	return sign(bytesCompare(a, b))
}

func bytesCompare(a, b string) int { return strings.Compare(a, b) }

// compareLongToString is compare_longs_to_string (PHP 8).
func compareLongToString(l int64, s string) int {
	n := parseNumeric(s)
	switch n.kind {
	case 'l':
		switch {
		case l > n.l:
			return 1
		case l < n.l:
			return -1
		}
		return 0
	case 'd':
		return cmpFloat(float64(l), n.d)
	}
	return sign(bytesCompare(strconv.FormatInt(l, 10), s))
}

// compareKeys is php_array_key_compare_i: SORT_REGULAR with PHP 8's stable
// fallback on the insertion position.
func compareKeys(a, b *Key) int {
	var r int
	switch {
	case a.IsInt && b.IsInt:
		if a.Int > b.Int {
			r = 1
		} else {
			r = -1
		}
	case !a.IsInt && !b.IsInt:
		r = smartStrcmp(a.Str, b.Str)
	case a.IsInt:
		r = compareLongToString(a.Int, b.Str)
	default:
		r = -compareLongToString(b.Int, a.Str)
	}
	if r != 0 {
		return r
	}
	switch {
	case a.Pos > b.Pos:
		return 1
	case a.Pos < b.Pos:
		return -1
	}
	return 0
}

// Ksort sorts e in place by key exactly as PHP 8's ksort($a) does, the
// keys' Pos breaking ties.
func Ksort(e []Entry) {
	cmp := func(i, j int) int { return compareKeys(&e[i].Key, &e[j].Key) }
	swp := func(i, j int) { e[i], e[j] = e[j], e[i] }
	if len(e) <= 1 {
		return
	}
	zendSort(0, len(e), cmp, swp)
}

// SortStrings sorts s in place exactly as PHP 8's sort($strings) does
// (SORT_REGULAR, stable).
func SortStrings(s []string) {
	pos := make([]int, len(s))
	for i := range pos {
		pos[i] = i
	}
	cmp := func(i, j int) int {
		if r := smartStrcmp(s[i], s[j]); r != 0 {
			return r
		}
		return pos[i] - pos[j]
	}
	swp := func(i, j int) {
		s[i], s[j] = s[j], s[i]
		pos[i], pos[j] = pos[j], pos[i]
	}
	if len(s) > 1 {
		zendSort(0, len(s), cmp, swp)
	}
}

func sort3(a, b, c int, cmp func(i, j int) int, swp func(i, j int)) {
	if cmp(a, b) <= 0 {
		if cmp(b, c) <= 0 {
			return
		}
		swp(b, c)
		if cmp(a, b) > 0 {
			swp(a, b)
		}
		return
	}
	if cmp(c, b) <= 0 {
		swp(a, c)
		return
	}
	swp(a, b)
	if cmp(b, c) > 0 {
		swp(b, c)
	}
}

func sort4(a, b, c, d int, cmp func(i, j int) int, swp func(i, j int)) {
	sort3(a, b, c, cmp, swp)
	if cmp(c, d) > 0 {
		swp(c, d)
		if cmp(b, c) > 0 {
			swp(b, c)
			if cmp(a, b) > 0 {
				swp(a, b)
			}
		}
	}
}

func sort5(a, b, c, d, e int, cmp func(i, j int) int, swp func(i, j int)) {
	sort4(a, b, c, d, cmp, swp)
	if cmp(d, e) > 0 {
		swp(d, e)
		if cmp(c, d) > 0 {
			swp(c, d)
			if cmp(b, c) > 0 {
				swp(b, c)
				if cmp(a, b) > 0 {
					swp(a, b)
				}
			}
		}
	}
}

// insertSort is zend_insert_sort over the n elements starting at base.
func insertSort(base, n int, cmp func(i, j int) int, swp func(i, j int)) {
	switch n {
	case 0, 1:
		return
	case 2:
		if cmp(base, base+1) > 0 {
			swp(base, base+1)
		}
		return
	case 3:
		sort3(base, base+1, base+2, cmp, swp)
		return
	case 4:
		sort4(base, base+1, base+2, base+3, cmp, swp)
		return
	case 5:
		sort5(base, base+1, base+2, base+3, base+4, cmp, swp)
		return
	}
	start, end := base, base+n
	sentry := start + 6
	for i := start + 1; i < sentry; i++ {
		j := i - 1
		if cmp(j, i) <= 0 {
			continue
		}
		for j != start {
			j--
			if cmp(j, i) <= 0 {
				j++
				break
			}
		}
		for k := i; k > j; k-- {
			swp(k, k-1)
		}
	}
	for i := sentry; i < end; i++ {
		j := i - 1
		if cmp(j, i) <= 0 {
			continue
		}
		for {
			j -= 2
			if cmp(j, i) <= 0 {
				j++
				if cmp(j, i) <= 0 {
					j++
				}
				break
			}
			if j == start {
				break
			}
			if j == start+1 {
				j--
				if cmp(i, j) > 0 {
					j++
				}
				break
			}
		}
		for k := i; k > j; k-- {
			swp(k, k-1)
		}
	}
}

// zendSort is zend_sort (hybrid insertion sort, libc++-style quicksort).
func zendSort(base, n int, cmp func(i, j int) int, swp func(i, j int)) {
	for {
		if n <= 16 {
			insertSort(base, n, cmp, swp)
			return
		}
		start, end := base, base+n
		offset := n >> 1
		pivot := start + offset
		if n>>10 != 0 {
			delta := offset >> 1
			sort5(start, start+delta, pivot, pivot+delta, end-1, cmp, swp)
		} else {
			sort3(start, pivot, end-1, cmp, swp)
		}
		swp(start+1, pivot)
		pivot = start + 1
		i, j := pivot+1, end-1
	loop:
		for {
			for cmp(pivot, i) > 0 {
				i++
				if i == j {
					break loop
				}
			}
			j--
			if j == i {
				break loop
			}
			for cmp(j, pivot) > 0 {
				j--
				if j == i {
					break loop
				}
			}
			swp(i, j)
			i++
			if i == j {
				break loop
			}
		}
		swp(pivot, i-1)
		if (i-1)-start < end-i {
			zendSort(start, i-start-1, cmp, swp)
			base, n = i, end-i
		} else {
			zendSort(i, end-i, cmp, swp)
			base, n = start, i-start-1
		}
	}
}

// IsList reports whether json_encode would write the array as a JSON list:
// its keys are exactly the integers 0..n-1, in order.
func IsList(e []Entry) bool {
	for i := range e {
		if !e[i].Key.IsInt || e[i].Key.Int != int64(i) {
			return false
		}
	}
	return true
}

// InvalidUTF8Error is returned when a string cannot be encoded because it is
// not valid UTF-8 (PHP's json_encode fails the same way).
type InvalidUTF8Error struct {
	S string
}

func (e *InvalidUTF8Error) Error() string {
	return fmt.Sprintf("malformed UTF-8 in %q", e.S)
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as PHP's json_encode (default flags) writes it. It
// returns b unchanged and an *InvalidUTF8Error when s is not UTF-8.
func AppendString(b []byte, s string) ([]byte, error) { return AppendStringFlag(b, s, false) }

// AppendStringFlag is AppendString, with "/" written as it is under
// JSON_UNESCAPED_SLASHES (unescapedSlashes).
func AppendStringFlag(b []byte, s string, unescapedSlashes bool) ([]byte, error) {
	if !utf8.ValidString(s) {
		return b, &InvalidUTF8Error{S: s}
	}
	b = append(b, '"')
	for len(s) > 0 {
		// Copy the run of bytes that need no escape in one go.
		i := 0
		for i < len(s) && s[i] >= 0x20 && s[i] < 0x80 && s[i] != '"' && s[i] != '\\' && (s[i] != '/' || unescapedSlashes) {
			i++
		}
		b = append(b, s[:i]...)
		s = s[i:]
		if len(s) == 0 {
			break
		}
		r, size := utf8.DecodeRuneInString(s)
		s = s[size:]
		switch {
		case r == '"':
			b = append(b, '\\', '"')
		case r == '\\':
			b = append(b, '\\', '\\')
		case r == '/' && !unescapedSlashes:
			b = append(b, '\\', '/')
		case r == '\b':
			b = append(b, '\\', 'b')
		case r == '\f':
			b = append(b, '\\', 'f')
		case r == '\n':
			b = append(b, '\\', 'n')
		case r == '\r':
			b = append(b, '\\', 'r')
		case r == '\t':
			b = append(b, '\\', 't')
		case r < 0x20:
			b = appendU(b, uint16(r))
		case r < 0x80:
			b = append(b, byte(r))
		case r < 0x10000:
			b = appendU(b, uint16(r))
		default:
			r -= 0x10000
			b = appendU(b, uint16(0xD800+(r>>10)))
			b = appendU(b, uint16(0xDC00+(r&0x3FF)))
		}
	}
	return append(b, '"'), nil
}

func appendU(b []byte, u uint16) []byte {
	return append(b, '\\', 'u', hexDigits[u>>12], hexDigits[u>>8&0xF], hexDigits[u>>4&0xF], hexDigits[u&0xF])
}

// JSONEncode returns json_encode($hashes) for entries already in ksort
// order. With pretty it returns the JSON_PRETTY_PRINT form nested at the
// given depth (for writing signature.json).
func JSONEncode(e []Entry, pretty bool, depth int) ([]byte, error) {
	size := 2
	for i := range e {
		size += len(e[i].Key.Str) + len(e[i].Value) + 16
	}
	b := bytes.NewBuffer(make([]byte, 0, size))
	if err := WriteJSON(b, e, pretty, depth); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// WriteJSON writes JSONEncode's bytes to w in chunks of about 64 KiB:
// a manifest's signed message is hashed as it is encoded, never held.
func WriteJSON(w io.Writer, e []Entry, pretty bool, depth int) error {
	list := IsList(e)
	open, closing := byte('{'), byte('}')
	if list {
		open, closing = '[', ']'
	}
	b := make([]byte, 1, 64<<10+512)
	b[0] = open
	var err error
	for i := range e {
		if len(b) >= 64<<10 {
			if _, err := w.Write(b); err != nil {
				return err
			}
			b = b[:0]
		}
		if i > 0 {
			b = append(b, ',')
		}
		if pretty {
			b = AppendIndent(b, depth+1)
		}
		if !list {
			if b, err = AppendString(b, e[i].Key.Str); err != nil {
				return fmt.Errorf("key: %w", err)
			}
			b = append(b, ':')
			if pretty {
				b = append(b, ' ')
			}
		}
		if b, err = AppendString(b, e[i].Value); err != nil {
			return fmt.Errorf("value of %q: %w", e[i].Key.Str, err)
		}
	}
	if pretty && len(e) > 0 {
		b = AppendIndent(b, depth)
	}
	_, err = w.Write(append(b, closing))
	return err
}

// AppendIndent appends what JSON_PRETTY_PRINT writes before an element
// nested at depth: a newline and four spaces per level.
func AppendIndent(b []byte, depth int) []byte {
	b = append(b, '\n')
	for i := 0; i < depth; i++ {
		b = append(b, "    "...)
	}
	return b
}

// Base64Decode decodes like PHP's base64_decode($s) (not strict):
// characters outside the alphabet and "=" are skipped, and so is a last
// character that cannot make a byte; skipped counts them. ok is false
// (and out nil) when what is left cannot be decoded.
func Base64Decode(s string) (out []byte, skipped int, ok bool) {
	clean := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/':
			clean = append(clean, c)
		case c == '=':
		default:
			skipped++
		}
	}
	if len(clean)%4 == 1 {
		// PHP drops a last character that cannot make a byte.
		clean = clean[:len(clean)-1]
		skipped++
	}
	out, err := base64.RawStdEncoding.DecodeString(string(clean))
	if err != nil {
		return nil, skipped, false
	}
	return out, skipped, true
}
