package phpcompat

import (
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// checkPHPEscapes checks that out is a JSON string literal written with
// exactly PHP's default escapes: "\/", lowercase \u00XX for control
// characters without a short form, lowercase \uXXXX for everything
// non-ASCII, and nothing else escaped.
func checkPHPEscapes(out []byte) error {
	if len(out) < 2 || out[0] != '"' || out[len(out)-1] != '"' {
		return errors.New("not a quoted string")
	}
	body := out[1 : len(out)-1]
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c >= 0x80:
			return errors.New("raw non-ASCII byte at " + strconv.Itoa(i))
		case c < 0x20:
			return errors.New("raw control character at " + strconv.Itoa(i))
		case c == '/':
			return errors.New("raw '/' at " + strconv.Itoa(i))
		case c == '"':
			return errors.New("raw '\"' at " + strconv.Itoa(i))
		case c != '\\':
			continue
		}
		i++
		if i >= len(body) {
			return errors.New("dangling backslash")
		}
		switch body[i] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		case 'u':
			if i+4 >= len(body) {
				return errors.New("short \\u escape")
			}
			hex := string(body[i+1 : i+5])
			if strings.ToLower(hex) != hex {
				return errors.New("upper-case hex in \\u" + hex)
			}
			v, err := strconv.ParseUint(hex, 16, 16)
			if err != nil {
				return err
			}
			switch {
			case v == '\b' || v == '\f' || v == '\n' || v == '\r' || v == '\t':
				return errors.New("\\u" + hex + " has a short form")
			case v >= 0x20 && v < 0x80:
				return errors.New("printable ASCII escaped as \\u" + hex)
			}
			i += 4
		default:
			return errors.New("unknown escape \\" + string(body[i]))
		}
	}
	return nil
}

func FuzzEncodeString(f *testing.F) {
	for _, s := range []string{"", "a/b", "\x00\x1f\x7f", "é😀\u2028", "\"\\", "\xff", "\xed\xa0\x80", "<>&'", "\b\f\n\r\t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := AppendString(nil, s)
		if !utf8.ValidString(s) {
			var ue *InvalidUTF8Error
			if !errors.As(err, &ue) {
				t.Fatalf("invalid UTF-8 %q: got %q, %v, want *InvalidUTF8Error", s, out, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("%q encoded as %s: encoding/json: %v", s, out, err)
		}
		if back != s {
			t.Fatalf("%q encoded as %s decodes to %q", s, out, back)
		}
		if err := checkPHPEscapes(out); err != nil {
			t.Fatalf("%q encoded as %s: %v", s, out, err)
		}
	})
}

func FuzzKsort(f *testing.F) {
	for _, s := range []string{
		"",
		"b\na\n10\n9\n2",
		"file.txt\n10\n9",
		"10\n9\na\n1e1",
		"9\n10\n1a",
		" 1\n01\n1\n1.0\n-0\n-1\n+1\n.5\n5.",
		"9223372036854775807\n9223372036854775808\n-9223372036854775808\n-9223372036854775809\n1e400\n-1e400",
		"a\nb\na",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// Build the array as json_decode would: numeric keys become
		// integers, the last of duplicate keys wins in the first position.
		var e []Entry
		index := map[string]int{}
		for i, k := range strings.Split(s, "\n") {
			pk := NewKey(k)
			if j, ok := index[pk.Str]; ok {
				e[j].Value = strconv.Itoa(i)
				continue
			}
			pk.Pos = len(e)
			index[pk.Str] = len(e)
			e = append(e, Entry{Key: pk, Value: strconv.Itoa(i)})
		}
		before := slices.Clone(e)
		Ksort(e)
		if len(e) != len(before) {
			t.Fatalf("ksort changed the length from %d to %d", len(before), len(e))
		}
		seen := make([]bool, len(e))
		allInts, allPlain := true, true
		for _, x := range e {
			if x.Key.Pos < 0 || x.Key.Pos >= len(before) || seen[x.Key.Pos] || before[x.Key.Pos] != x {
				t.Fatalf("ksort result is not a permutation of its input: %v", e)
			}
			seen[x.Key.Pos] = true
			if !x.Key.IsInt {
				allInts = false
			}
			if x.Key.IsInt || parseNumeric(x.Key.Str).kind != 0 {
				allPlain = false
			}
		}
		switch {
		case allInts:
			if !sort.SliceIsSorted(e, func(i, j int) bool { return e[i].Key.Int < e[j].Key.Int }) {
				t.Fatalf("integer keys not in numeric order: %v", e)
			}
		case allPlain:
			if !sort.SliceIsSorted(e, func(i, j int) bool { return e[i].Key.Str < e[j].Key.Str }) {
				t.Fatalf("non-numeric keys not in byte order: %v", e)
			}
		}
	})
}
