package phpcompat

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

func TestAppendPHPString(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", `""`},
		{"plain ascii 123", `"plain ascii 123"`},
		{"a/b/c", `"a\/b\/c"`},
		{`quote " and backslash \`, `"quote \" and backslash \\"`},
		{"é", `"\u00e9"`},
		{"É", `"\u00c9"`},
		{"€", `"\u20ac"`},
		{"日本", `"\u65e5\u672c"`},
		{"\u00a0", `"\u00a0"`},
		{"\u2028\u2029", `"\u2028\u2029"`},
		{"\ufeff", `"\ufeff"`},
		{"\uffff", `"\uffff"`},
		{"😀", `"\ud83d\ude00"`},
		{"\U00010000", `"\ud800\udc00"`},
		{"\U0010ffff", `"\udbff\udfff"`},
		{"\b\f\n\r\t", `"\b\f\n\r\t"`},
		{"\x00", `"\u0000"`},
		{"\x01\x0b\x0e\x1a\x1f", `"\u0001\u000b\u000e\u001a\u001f"`},
		{"\x7f", "\"\x7f\""},
		{"<>&'", `"<>&'"`},
		{" !#$%()*+,-.:;=?@[]^_`{|}~", "\" !#$%()*+,-.:;=?@[]^_`{|}~\""},
		{"apps/files/l10n/de_DE.js", `"apps\/files\/l10n\/de_DE.js"`},
		{"dir/größe 😀.txt", `"dir\/gr\u00f6\u00dfe \ud83d\ude00.txt"`},
	}
	for _, tt := range tests {
		got, err := AppendString(nil, tt.in)
		if err != nil {
			t.Errorf("AppendString(%q): got error %v, want %s", tt.in, err, tt.want)
			continue
		}
		if string(got) != tt.want {
			t.Errorf("AppendString(%q): got %s, want %s", tt.in, got, tt.want)
		}
		// Appending keeps what is already there.
		got, _ = AppendString([]byte("prefix:"), tt.in)
		if want := "prefix:" + tt.want; string(got) != want {
			t.Errorf("AppendString(prefix, %q): got %s, want %s", tt.in, got, want)
		}
	}
}

func TestAppendPHPStringInvalidUTF8(t *testing.T) {
	for _, in := range []string{
		"\xff",
		"\x80",
		"abc\xc3",          // truncated 2-byte sequence
		"\xc3\x28",         // bad continuation
		"\xc0\xaf",         // overlong "/"
		"\xe0\x80\xaf",     // overlong "/"
		"\xed\xa0\x80",     // UTF-8-encoded surrogate U+D800
		"\xed\xbf\xbf",     // UTF-8-encoded surrogate U+DFFF
		"\xf4\x90\x80\x80", // above U+10FFFF
		"ok/\xfe/ok",
	} {
		got, err := AppendString([]byte("p"), in)
		var ue *InvalidUTF8Error
		if !errors.As(err, &ue) {
			t.Errorf("AppendString(%q): got error %v, want *InvalidUTF8Error", in, err)
			continue
		}
		if ue.S != in {
			t.Errorf("AppendString(%q): error names %q, want the input", in, ue.S)
		}
		if string(got) != "p" {
			t.Errorf("AppendString(%q): got buffer %q on error, want it unchanged %q", in, got, "p")
		}
	}
}

func TestHandleNumericStr(t *testing.T) {
	tests := []struct {
		in    string
		want  int64
		isInt bool
		bug   string // set when the implementation is known to differ from PHP
	}{
		{"0", 0, true, ""},
		{"1", 1, true, ""},
		{"123", 123, true, ""},
		{"-7", -7, true, ""},
		{"-1", -1, true, ""},
		{"0123", 0, false, ""},
		{"00", 0, false, ""},
		{"-0", 0, false, ""},
		{"-01", 0, false, ""},
		{"1e3", 0, false, ""},
		{"1.0", 0, false, ""},
		{" 1", 0, false, ""},
		{"1 ", 0, false, ""},
		{"+1", 0, false, ""},
		{"", 0, false, ""},
		{"-", 0, false, ""},
		{"--1", 0, false, ""},
		{"1-", 0, false, ""},
		{"0x1A", 0, false, ""},
		{"1_000", 0, false, ""},
		{"١", 0, false, ""}, // Arabic-Indic digit one
		{"9223372036854775807", math.MaxInt64, true, ""},
		{"9223372036854775808", 0, false, ""},
		{"9999999999999999999", 0, false, ""},
		{"10000000000000000000", 0, false, ""},
		{"-9223372036854775807", -math.MaxInt64, true, ""},
		{"-9223372036854775808", math.MinInt64, true, ""},
		// PHP 7 and 8 (_zend_handle_numeric_str_ex) accumulate the digits
		// in a zend_ulong and refuse a negative key when idx-1 >
		// ZEND_LONG_MAX: these stay string keys (checked with PHP 8.2).
		// There is no ZEND_STRTOL saturation any more.
		{"-9223372036854775809", 0, false, "handleNumericStr saturates to PHP_INT_MIN, PHP 7/8 keep the string key"},
		{"-9999999999999999999", 0, false, "handleNumericStr saturates to PHP_INT_MIN, PHP 7/8 keep the string key"},
		{"-10000000000000000000", 0, false, ""},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.in), func(t *testing.T) {
			got, ok := handleNumericStr(tt.in)
			if ok != tt.isInt || (ok && got != tt.want) {
				if tt.bug != "" {
					t.Errorf("regression: handleNumericStr(%q) = %d, %v; PHP gives %d, %v: %s", tt.in, got, ok, tt.want, tt.isInt, tt.bug)
				}
				t.Fatalf("handleNumericStr(%q): got %d, %v, want %d, %v", tt.in, got, ok, tt.want, tt.isInt)
			}
			k := NewKey(tt.in)
			if k.IsInt != tt.isInt {
				t.Errorf("NewKey(%q).IsInt: got %v, want %v", tt.in, k.IsInt, tt.isInt)
			}
			if k.Str != tt.in {
				t.Errorf("NewKey(%q).Str: got %q, want the key unchanged", tt.in, k.Str)
			}
		})
	}
}

func TestParseNumeric(t *testing.T) {
	const (
		no = byte(0)
		l  = byte('l')
		d  = byte('d')
	)
	tests := []struct {
		in    string
		kind  byte
		l     int64
		d     float64
		oflow int
	}{
		{"0", l, 0, 0, 0},
		{"1", l, 1, 0, 0},
		{"007", l, 7, 0, 0},
		{"000", l, 0, 0, 0},
		{" 1", l, 1, 0, 0},
		{"\t\n\r\v\f1", l, 1, 0, 0},
		{"1 ", l, 1, 0, 0}, // PHP 8 allows trailing whitespace
		{" 1 ", l, 1, 0, 0},
		{"+1", l, 1, 0, 0},
		{"-1", l, -1, 0, 0},
		{"-0", l, 0, 0, 0},
		{".5", d, 0, 0.5, 0},
		{"-.5", d, 0, -0.5, 0},
		{"5.", d, 0, 5, 0},
		{"1.5", d, 0, 1.5, 0},
		{"1e5", d, 0, 1e5, 0},
		{"1E5", d, 0, 1e5, 0},
		{"1e+5", d, 0, 1e5, 0},
		{"1e-5", d, 0, 1e-5, 0},
		{"1.5e3", d, 0, 1500, 0},
		{".5e1", d, 0, 5, 0},
		{"1e1", d, 0, 10, 0},
		{"1e", no, 0, 0, 0},
		{"1e+", no, 0, 0, 0},
		{"1.5e", no, 0, 0, 0},
		{"e5", no, 0, 0, 0},
		{".", no, 0, 0, 0},
		{".e1", no, 0, 0, 0},
		{"", no, 0, 0, 0},
		{" ", no, 0, 0, 0},
		{"+", no, 0, 0, 0},
		{"-", no, 0, 0, 0},
		{"+-1", no, 0, 0, 0},
		{"abc", no, 0, 0, 0},
		{"1a", no, 0, 0, 0},
		{"a1", no, 0, 0, 0},
		{"0x1A", no, 0, 0, 0},
		{"0b1", no, 0, 0, 0},
		{"1_000", no, 0, 0, 0},
		{"1 000", no, 0, 0, 0},
		{"1.2.3", no, 0, 0, 0},
		{"INF", no, 0, 0, 0},
		{"NAN", no, 0, 0, 0},
		{"9223372036854775807", l, math.MaxInt64, 0, 0},
		{"-9223372036854775808", l, math.MinInt64, 0, 0},
		{"9223372036854775808", d, 0, 9223372036854775808, 1},
		{"-9223372036854775809", d, 0, -9223372036854775809, -1},
		{"99999999999999999999", d, 0, 1e20, 1},
		{"-99999999999999999999", d, 0, -1e20, -1},
		{"1" + strings.Repeat("0", 400), d, 0, math.Inf(1), 1},
	}
	for _, tt := range tests {
		got := parseNumeric(tt.in)
		if got.kind != tt.kind {
			t.Errorf("parseNumeric(%q).kind: got %q, want %q", tt.in, got.kind, tt.kind)
			continue
		}
		switch tt.kind {
		case l:
			if got.l != tt.l {
				t.Errorf("parseNumeric(%q): got integer %d, want %d", tt.in, got.l, tt.l)
			}
		case d:
			if got.d != tt.d {
				t.Errorf("parseNumeric(%q): got double %v, want %v", tt.in, got.d, tt.d)
			}
		}
		if got.oflow != tt.oflow {
			t.Errorf("parseNumeric(%q).oflow: got %d, want %d", tt.in, got.oflow, tt.oflow)
		}
	}
}

// sortKeys returns the keys, inserted in the given order, as PHP 8's
// ksort leaves them.
func sortKeys(keys []string) []string {
	e := make([]Entry, len(keys))
	for i, k := range keys {
		e[i].Key = NewKey(k)
		e[i].Key.Pos = i
		e[i].Value = "v" + k
	}
	Ksort(e)
	out := make([]string, len(e))
	for i := range e {
		out[i] = e[i].Key.Str
	}
	return out
}

// Every expectation here was checked with PHP 8.2's ksort.
func TestKsort(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want []string
	}{
		{"empty", nil, []string{}},
		{"one", []string{"x"}, []string{"x"}},
		{"ints before letters", []string{"b", "a", "10", "9", "2"}, []string{"2", "9", "10", "a", "b"}},
		{"ints numerically, then a file", []string{"file.txt", "10", "9"}, []string{"9", "10", "file.txt"}},
		// 10 == "1e1" numerically; the tie is broken by insertion order.
		{"numeric string equal to int, int first", []string{"10", "9", "a", "1e1"}, []string{"9", "10", "1e1", "a"}},
		{"numeric string equal to int, string first", []string{"1e1", "a", "9", "10"}, []string{"9", "1e1", "10", "a"}},
		{"leading zero string equals int", []string{"2", "01", "1"}, []string{"01", "1", "2"}},
		{"negative ints", []string{"-1", "0", "-10"}, []string{"-10", "-1", "0"}},
		{"float strings between ints", []string{"2", "1.5", "1"}, []string{"1", "1.5", "2"}},
		// Two numeric strings compare numerically, not bytewise.
		{"numeric strings with whitespace", []string{" 10", " 9"}, []string{" 9", " 10"}},
		{"decimal strings", []string{"10.0", "9.5"}, []string{"9.5", "10.0"}},
		{"whitespace-padded number vs int", []string{" 1", "0"}, []string{"0", " 1"}},
		// int vs non-numeric string: the int's decimal text, bytewise.
		{"int vs punctuation", []string{"5", "!x"}, []string{"!x", "5"}},
		{"negative int vs letter", []string{"a", "-5"}, []string{"-5", "a"}},
		// Non-numeric strings: bytewise, so upper case first and
		// non-ASCII last.
		{"bytewise strings", []string{"b", "B", "é", "a", "A", "_"}, []string{"A", "B", "_", "a", "b", "é"}},
		{"paths", []string{"lib/b.php", "lib/a.php", "lib.php", "lib-x/a"}, []string{"lib-x/a", "lib.php", "lib/a.php", "lib/b.php"}},
		// 9 < 10 (ints), 10 < "1a" and "1a" < 9 (bytewise "10" < "1a" <
		// "9"): a cycle, so the order depends on zend_sort_3's steps and on
		// the insertion order (traced by hand, checked with PHP 8.2).
		{"cycle, ints first", []string{"9", "10", "1a"}, []string{"9", "10", "1a"}},
		{"cycle, string first", []string{"1a", "9", "10"}, []string{"1a", "9", "10"}},
		{"cycle, ints reversed", []string{"10", "9", "1a"}, []string{"1a", "9", "10"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sortKeys(tt.in)
			if !slices.Equal(got, tt.want) {
				t.Errorf("ksort(%q): got %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// encodeKeys builds entries for keys with values "v<key>", ksorts them and
// returns json_encode's output.
func encodeKeys(t *testing.T, keys, values []string, pretty bool, depth int) string {
	t.Helper()
	e := make([]Entry, len(keys))
	for i, k := range keys {
		e[i].Key = NewKey(k)
		e[i].Key.Pos = i
		e[i].Value = values[i]
	}
	Ksort(e)
	b, err := JSONEncode(e, pretty, depth)
	if err != nil {
		t.Fatalf("JSONEncode(%q): %v", keys, err)
	}
	return string(b)
}

func TestEncodeHashes(t *testing.T) {
	tests := []struct {
		name   string
		keys   []string
		values []string
		want   string
	}{
		{"empty", nil, nil, `[]`},
		{"list in order", []string{"0", "1", "2"}, []string{"a", "b", "c"}, `["a","b","c"]`},
		{"list inserted out of order", []string{"2", "0", "1"}, []string{"c", "a", "b"}, `["a","b","c"]`},
		{"single zero key", []string{"0"}, []string{"a/b"}, `["a\/b"]`},
		{"gap", []string{"0", "2"}, []string{"a", "c"}, `{"0":"a","2":"c"}`},
		{"not from zero", []string{"1", "2"}, []string{"a", "b"}, `{"1":"a","2":"b"}`},
		{"negative", []string{"-1", "0"}, []string{"a", "b"}, `{"-1":"a","0":"b"}`},
		{"string key", []string{"0", "1", "x"}, []string{"a", "b", "c"}, `{"0":"a","1":"b","x":"c"}`},
		{"leading-zero key is a string", []string{"0", "01"}, []string{"a", "b"}, `{"0":"a","01":"b"}`},
		{"escaped keys", []string{"b/ü", "a/😀"}, []string{"1", "2"}, `{"a\/\ud83d\ude00":"2","b\/\u00fc":"1"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := encodeKeys(t, tt.keys, tt.values, false, 0); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestEncodeHashesPretty(t *testing.T) {
	tests := []struct {
		name   string
		keys   []string
		values []string
		depth  int
		want   string
	}{
		{"empty", nil, nil, 1, `[]`},
		{"object depth 0", []string{"a/b", "c"}, []string{"1", "2"}, 0, "{\n    \"a\\/b\": \"1\",\n    \"c\": \"2\"\n}"},
		{"object depth 1", []string{"c", "a"}, []string{"2", "1"}, 1, "{\n        \"a\": \"1\",\n        \"c\": \"2\"\n    }"},
		{"list depth 1", []string{"1", "0"}, []string{"b", "a"}, 1, "[\n        \"a\",\n        \"b\"\n    ]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := encodeKeys(t, tt.keys, tt.values, true, tt.depth); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestEncodeHashesInvalidUTF8(t *testing.T) {
	for _, tt := range []struct{ key, value string }{{"bad\xff", "v"}, {"good", "bad\xff"}} {
		e := []Entry{{Key: NewKey(tt.key), Value: tt.value}}
		_, err := JSONEncode(e, false, 0)
		var ue *InvalidUTF8Error
		if !errors.As(err, &ue) {
			t.Errorf("JSONEncode(%q: %q): got error %v, want *InvalidUTF8Error", tt.key, tt.value, err)
		}
	}
}

func hasRawNonASCII(b []byte) bool {
	return bytes.IndexFunc(b, func(r rune) bool { return r >= 0x80 }) >= 0
}

// randomPathKey returns a path-like key that PHP never treats as a number.
func randomPathKey(r *rand.Rand) string {
	pieces := []string{"a", "b", "z", "A", "Z", "0", "1", "9", "/", ".", "-", "_", "e", "E", "é", "ß", "日", "😀", "php", "js"}
	for {
		var b strings.Builder
		n := 1 + r.Intn(12)
		for i := 0; i < n; i++ {
			b.WriteString(pieces[r.Intn(len(pieces))])
		}
		s := b.String()
		if _, isInt := handleNumericStr(s); isInt || parseNumeric(s).kind != 0 {
			continue
		}
		return s
	}
}

// For keys that are never numeric, ksort is a plain byte sort, and the
// encoded object decodes back to the same map.
func TestKsortPathKeysProperty(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for trial := 0; trial < 300; trial++ {
		n := r.Intn(200)
		set := map[string]string{}
		var keys []string
		for len(keys) < n {
			k := randomPathKey(r)
			if _, dup := set[k]; dup {
				continue
			}
			set[k] = fmt.Sprintf("%0128x", r.Uint64())
			keys = append(keys, k)
		}
		got := sortKeys(keys)
		want := slices.Clone(keys)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Fatalf("trial %d: ksort(%q):\ngot  %q\nwant %q", trial, keys, got, want)
		}
		values := make([]string, len(keys))
		for i, k := range keys {
			values[i] = set[k]
		}
		enc := encodeKeys(t, keys, values, false, 0)
		if hasRawNonASCII([]byte(enc)) || strings.Contains(strings.ReplaceAll(enc, `\/`, ""), "/") {
			t.Fatalf("trial %d: output has raw non-ASCII or unescaped '/': %s", trial, enc)
		}
		if n == 0 {
			if enc != "[]" {
				t.Fatalf("trial %d: empty: got %s, want []", trial, enc)
			}
			continue
		}
		var back map[string]string
		if err := json.Unmarshal([]byte(enc), &back); err != nil {
			t.Fatalf("trial %d: encoding/json cannot read %s: %v", trial, enc, err)
		}
		if len(back) != len(set) {
			t.Fatalf("trial %d: decoded %d keys, want %d", trial, len(back), len(set))
		}
		for k, v := range set {
			if back[k] != v {
				t.Fatalf("trial %d: key %q: got %q, want %q", trial, k, back[k], v)
			}
		}
	}
}

// Integer keys sort numerically whatever the insertion order; 0..n-1 is a
// JSON list.
func TestKsortIntKeysProperty(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	for trial := 0; trial < 200; trial++ {
		n := r.Intn(300)
		seen := map[int64]bool{}
		var ints []int64
		dense := trial%2 == 0
		if dense {
			for i := 0; i < n; i++ {
				ints = append(ints, int64(i))
			}
			r.Shuffle(len(ints), func(i, j int) { ints[i], ints[j] = ints[j], ints[i] })
		} else {
			for len(ints) < n {
				v := r.Int63n(1<<40) - 1<<39
				if !seen[v] {
					seen[v] = true
					ints = append(ints, v)
				}
			}
		}
		keys := make([]string, n)
		for i, v := range ints {
			keys[i] = strconv.FormatInt(v, 10)
		}
		got := sortKeys(keys)
		want := slices.Clone(ints)
		slices.Sort(want)
		for i := range want {
			if got[i] != strconv.FormatInt(want[i], 10) {
				t.Fatalf("trial %d: ksort(%q): got %q", trial, keys, got)
			}
		}
		if dense {
			values := make([]string, n)
			for i, v := range ints {
				values[i] = "h" + strconv.FormatInt(v, 10)
			}
			enc := encodeKeys(t, keys, values, false, 0)
			var list []string
			if err := json.Unmarshal([]byte(enc), &list); err != nil {
				t.Fatalf("trial %d: keys 0..%d: got %.80s, want a JSON list: %v", trial, n-1, enc, err)
			}
			for i, v := range list {
				if v != "h"+strconv.Itoa(i) {
					t.Fatalf("trial %d: list[%d] = %q, want %q", trial, i, v, "h"+strconv.Itoa(i))
				}
			}
		}
	}
}

type sortItem struct{ v, idx int }

// zendSortItems sorts s with zendSort, comparing values and, when
// tieBreak, the original index (PHP 8's stable fallback).
func zendSortItems(s []sortItem, tieBreak bool) {
	cmp := func(i, j int) int {
		switch {
		case s[i].v < s[j].v:
			return -1
		case s[i].v > s[j].v:
			return 1
		}
		if !tieBreak {
			return 0
		}
		return s[i].idx - s[j].idx
	}
	zendSort(0, len(s), cmp, func(i, j int) { s[i], s[j] = s[j], s[i] })
}

func checkZendSort(t *testing.T, name string, vals []int) {
	t.Helper()
	items := make([]sortItem, len(vals))
	for i, v := range vals {
		items[i] = sortItem{v, i}
	}
	want := slices.Clone(items)
	sort.SliceStable(want, func(i, j int) bool { return want[i].v < want[j].v })

	got := slices.Clone(items)
	zendSortItems(got, true)
	if !slices.Equal(got, want) {
		t.Fatalf("%s: zendSort with tie-break of %v:\ngot  %v\nwant %v", name, vals, got, want)
	}

	// Without the tie-break the order of equal values is unspecified, but
	// the result is sorted and a permutation.
	got = slices.Clone(items)
	zendSortItems(got, false)
	seen := make([]bool, len(got))
	for i, it := range got {
		if i > 0 && got[i-1].v > it.v {
			t.Fatalf("%s: zendSort without tie-break of %v: not sorted at %d: %v", name, vals, i, got)
		}
		if seen[it.idx] || vals[it.idx] != it.v {
			t.Fatalf("%s: zendSort without tie-break of %v: not a permutation: %v", name, vals, got)
		}
		seen[it.idx] = true
	}
}

func TestZendSortProperty(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	lengths := []int{1023, 1024, 1025, 2000}
	for n := 0; n <= 40; n++ {
		lengths = append(lengths, n)
	}
	for i := 0; i < 40; i++ {
		lengths = append(lengths, r.Intn(2001))
	}
	for _, n := range lengths {
		patterns := map[string]func(i int) int{
			"random":      func(int) int { return r.Int() },
			"few values":  func(int) int { return r.Intn(4) },
			"sorted":      func(i int) int { return i },
			"reversed":    func(i int) int { return n - i },
			"equal":       func(int) int { return 7 },
			"organ pipe":  func(i int) int { return min(i, n-i) },
			"sawtooth":    func(i int) int { return i % 17 },
			"nearly sort": func(i int) int { return i + r.Intn(3) },
		}
		for name, gen := range patterns {
			vals := make([]int, n)
			for i := range vals {
				vals[i] = gen(i)
			}
			checkZendSort(t, fmt.Sprintf("%s n=%d", name, n), vals)
		}
	}
}

// Every permutation of up to 8 distinct values, and every sequence of up
// to 8 values out of 3, goes through sort3/sort4/sort5 and both loops of
// the insertion sort.
func TestZendSortExhaustiveSmall(t *testing.T) {
	var permute func(a []int, k int, f func([]int))
	permute = func(a []int, k int, f func([]int)) {
		if k == len(a) {
			f(a)
			return
		}
		for i := k; i < len(a); i++ {
			a[k], a[i] = a[i], a[k]
			permute(a, k+1, f)
			a[k], a[i] = a[i], a[k]
		}
	}
	for n := 0; n <= 8; n++ {
		a := make([]int, n)
		for i := range a {
			a[i] = i
		}
		permute(a, 0, func(p []int) { checkZendSort(t, "permutation", slices.Clone(p)) })
		total := 1
		for i := 0; i < n; i++ {
			total *= 3
		}
		for c := 0; c < total; c++ {
			vals := make([]int, n)
			for i, x := 0, c; i < n; i, x = i+1, x/3 {
				vals[i] = x % 3
			}
			checkZendSort(t, "three values", vals)
		}
	}
}

// phpScript reads cases from standard input and prints one JSON line per
// case: ksort'ed json_encode of the array built from the pairs, the keys'
// integer-ness, json_encode of each string, base64_decode in hex.
const phpScript = `<?php
$in = json_decode(stream_get_contents(STDIN), true);
foreach ($in["arrays"] as $pairs) {
	$a = [];
	foreach ($pairs as $p) { $a[$p[0]] = $p[1]; }
	ksort($a);
	echo json_encode($a), "\n";
}
foreach ($in["keys"] as $k) {
	$a = [$k => 1];
	$key = array_key_first($a);
	echo is_int($key) ? "int " . $key : "string", "\n";
}
foreach ($in["strings"] as $s) { echo json_encode($s), "\n"; }
foreach ($in["base64"] as $s) { echo bin2hex(base64_decode($s)), "\n"; }
`

// randomPHPKey returns a key of one of the kinds PHP treats differently.
func randomPHPKey(r *rand.Rand) string {
	digits := func(n int) string {
		var b strings.Builder
		for i := 0; i < n; i++ {
			b.WriteByte(byte('0' + r.Intn(10)))
		}
		return b.String()
	}
	switch r.Intn(12) {
	case 0, 1, 2:
		return strconv.Itoa(r.Intn(300))
	case 3:
		return strconv.Itoa(-r.Intn(300))
	case 4:
		return strconv.Itoa(r.Intn(300)) + string(rune('a'+r.Intn(3)))
	case 5:
		return []string{"1e1", "1e2", " 5", "5 ", "07", "1.5", ".5", "5.", "+3", "-0", "0x1A", "1_0", "-", "", " ", "1e", "9223372036854775807", "9223372036854775808", "-9223372036854775808", "99999999999999999999"}[r.Intn(20)]
	case 6:
		return digits(1+r.Intn(3)) + "." + digits(1+r.Intn(2))
	case 7:
		return "lib/" + randomPathKey(r)
	case 8:
		return []string{"a", "b", "B", "_", "é", "😀", "~", "!", "z/1"}[r.Intn(9)] + digits(r.Intn(3))
	default:
		return randomPathKey(r)
	}
}

// TestAgainstPHP compares ksort, json_encode, integer keys and
// base64_decode with PHP itself, when php is installed.
func TestAgainstPHP(t *testing.T) {
	php, err := exec.LookPath("php")
	if err != nil {
		t.Skip("php is not on PATH: no comparison with PHP itself")
	}
	r := rand.New(rand.NewSource(4))
	var arrays [][][2]string
	sizes := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 17, 20, 33, 64, 100, 1023, 1024, 1500, 2000}
	for i := 0; i < 300; i++ {
		sizes = append(sizes, r.Intn(40))
	}
	for i := 0; i < 30; i++ {
		sizes = append(sizes, 17+r.Intn(200))
	}
	for _, n := range sizes {
		pairs := make([][2]string, n)
		for i := range pairs {
			pairs[i] = [2]string{randomPHPKey(r), "v" + strconv.Itoa(i)}
		}
		arrays = append(arrays, pairs)
	}
	keys := []string{"0", "-0", "00", "-", "", "123", "-7", "0123", "1e3", " 1", "1 ", "+1",
		"9223372036854775807", "9223372036854775808", "-9223372036854775807", "-9223372036854775808",
		"-9223372036854775809", "-9999999999999999999", "-10000000000000000000", "9999999999999999999"}
	var strs []string
	for i := 0; i < 300; i++ {
		var b strings.Builder
		for j := r.Intn(12); j > 0; j-- {
			switch r.Intn(4) {
			case 0:
				b.WriteByte(byte(r.Intn(0x80)))
			case 1:
				b.WriteRune(rune(0x80 + r.Intn(0x800)))
			case 2:
				b.WriteRune(rune(0x800 + r.Intn(0xd000)))
			default:
				b.WriteRune(rune(0x10000 + r.Intn(0x100000)))
			}
		}
		strs = append(strs, b.String())
	}
	const b64 = "ABCabc019+/=\n *"
	var b64s []string
	for i := 0; i < 200; i++ {
		var b strings.Builder
		for j := r.Intn(14); j > 0; j-- {
			b.WriteByte(b64[r.Intn(len(b64))])
		}
		b64s = append(b64s, b.String())
	}

	in, err := json.Marshal(map[string]any{"arrays": arrays, "keys": keys, "strings": strs, "base64": b64s})
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "cases.php")
	writeFile(t, script, []byte(phpScript))
	cmd := exec.Command(php, script)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("php: %v\n%s", err, stderr.Bytes())
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if want := len(arrays) + len(keys) + len(strs) + len(b64s); len(lines) != want {
		t.Fatalf("php printed %d lines, want %d", len(lines), want)
	}

	t.Run("ksort and json_encode", func(t *testing.T) {
		for i, pairs := range arrays {
			var e []Entry
			index := map[string]int{}
			for _, p := range pairs {
				k := NewKey(p[0])
				if j, ok := index[k.Str]; ok {
					e[j].Value = p[1]
					continue
				}
				k.Pos = len(e)
				index[k.Str] = len(e)
				e = append(e, Entry{Key: k, Value: p[1]})
			}
			Ksort(e)
			got, err := JSONEncode(e, false, 0)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != lines[i] {
				t.Errorf("%d keys %q:\n got %s\nwant %s (PHP)", len(pairs), pairs, got, lines[i])
			}
		}
	})
	lines = lines[len(arrays):]
	t.Run("integer keys", func(t *testing.T) {
		for i, k := range keys {
			want := lines[i]
			got := "string"
			if v, ok := handleNumericStr(k); ok {
				got = "int " + strconv.FormatInt(v, 10)
			}
			if got != want {
				t.Errorf("key %q: got %s, PHP gives %s", k, got, want)
			}
		}
	})
	lines = lines[len(keys):]
	t.Run("json_encode of strings", func(t *testing.T) {
		for i, s := range strs {
			got, err := AppendString(nil, s)
			if err != nil || string(got) != lines[i] {
				t.Errorf("%q: got %s, %v, PHP gives %s", s, got, err, lines[i])
			}
		}
	})
	lines = lines[len(strs):]
	t.Run("base64_decode", func(t *testing.T) {
		var diffs []string
		for i, s := range b64s {
			got, _, _ := Base64Decode(s)
			if hex.EncodeToString(got) != lines[i] {
				diffs = append(diffs, fmt.Sprintf("%q: got %x, PHP gives %s", s, got, lines[i]))
				// The one known difference: a last group of one character.
				if n := len(strings.Map(func(r rune) rune {
					if r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '+' || r == '/' {
						return r
					}
					return -1
				}, s)); n%4 != 1 {
					t.Errorf("%q: got %x, PHP gives %s", s, got, lines[i])
				}
			}
		}
		if len(diffs) > 0 {
			t.Errorf("regression: Base64Decode differs from PHP's base64_decode on %d of %d inputs, e.g. %s", len(diffs), len(b64s), diffs[0])
		}
	})
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
