package phpcompat

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// This file is PHP's json_decode as far as integrityd needs it: what it
// refuses (CheckJSON) and a reader of what it accepts (JSONReader).

// MaxJSONDepth is PHP json_decode's default nesting limit.
const MaxJSONDepth = 512

// JSONReader reads JSON that CheckJSON has already accepted, value by
// value, as json_decode reads it: keys are case-sensitive, the last of
// duplicate keys wins. It is several times faster than json.Decoder on a
// core manifest's 30,000 entries.
type JSONReader struct {
	data []byte
	i    int
}

// NewJSONReader reads data from its start.
func NewJSONReader(data []byte) *JSONReader { return &JSONReader{data: data} }

// Next consumes the byte Peek returned (a '{', '[', ',' or ':').
func (p *JSONReader) Next() { p.i++ }

// Literal reads a number, true, false or null and returns its text.
func (p *JSONReader) Literal() string {
	p.skipSpace()
	start := p.i
	for p.i < len(p.data) {
		c := p.data[p.i]
		if !(c == '-' || c == '+' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			break
		}
		p.i++
	}
	return string(p.data[start:p.i])
}

func (p *JSONReader) skipSpace() {
	for p.i < len(p.data) && (p.data[p.i] == ' ' || p.data[p.i] == '\t' || p.data[p.i] == '\n' || p.data[p.i] == '\r') {
		p.i++
	}
}

// Peek returns the next byte that is not space, 0 at the end.
func (p *JSONReader) Peek() byte {
	p.skipSpace()
	if p.i >= len(p.data) {
		return 0
	}
	return p.data[p.i]
}

// Str reads a string literal; ok is false when the value is not a string.
func (p *JSONReader) Str() (string, bool, error) {
	if p.Peek() != '"' {
		return "", false, nil
	}
	start := p.i
	escaped := false
	for p.i++; p.i < len(p.data); p.i++ {
		switch p.data[p.i] {
		case '\\':
			escaped = true
			p.i++
		case '"':
			p.i++
			lit := p.data[start:p.i]
			if !escaped {
				return string(lit[1 : len(lit)-1]), true, nil
			}
			if s, ok := unescapeSlashes(lit[1 : len(lit)-1]); ok {
				return s, true, nil
			}
			var s string
			if err := json.Unmarshal(lit, &s); err != nil {
				return "", false, err
			}
			return s, true, nil
		}
	}
	return "", false, errors.New("unterminated string")
}

// unescapeSlashes decodes a string literal's body whose only escapes are
// "\/" (json_encode writes every "/" so: every key of a manifest), ok
// false for any other escape.
func unescapeSlashes(b []byte) (string, bool) {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '\\' {
			if i+1 >= len(b) || b[i+1] != '/' {
				return "", false
			}
			i++
		}
		out = append(out, b[i])
	}
	return string(out), true
}

// strView is Str without a copy of a string that has no escapes: the
// value shares p.data's bytes, which are never written, and keeps them
// alive as long as it lives. For the hashes' values, dropped once
// converted (expectedEntries), so that a manifest's text is not held
// twice while it is parsed.
func (p *JSONReader) strView() (string, bool, error) {
	if p.Peek() != '"' {
		return "", false, nil
	}
	start := p.i + 1
	for i := start; i < len(p.data); i++ {
		switch p.data[i] {
		case '\\':
			return p.Str()
		case '"':
			p.i = i + 1
			if i == start {
				return "", true, nil
			}
			return unsafe.String(&p.data[start], i-start), true, nil
		}
	}
	return p.Str()
}

// SkipValue skips one (valid) JSON value.
func (p *JSONReader) SkipValue() {
	depth := 0
	for p.Peek() != 0 {
		c := p.data[p.i]
		switch c {
		case '"':
			p.Str()
		case '{', '[':
			depth++
			p.i++
		case '}', ']':
			if depth == 0 {
				return
			}
			depth--
			p.i++
		case ',', ':':
			if depth == 0 {
				return
			}
			p.i++
		default: // number, true, false, null
			p.i++
		}
		if depth == 0 && (c == '"' || c == '}' || c == ']') {
			return
		}
	}
}

// Entries reads an object or (as PHP allows) a list of strings (a
// manifest's "hashes") into entries in first-seen order with the last
// value winning, as a PHP array built by json_decode would hold them.
func (p *JSONReader) Entries() ([]Entry, error) {
	open := p.Peek()
	if open != '{' && open != '[' {
		return nil, errors.New("not an object")
	}
	closing := byte('}')
	if open == '[' {
		closing = ']'
	}
	p.i++
	var entries []Entry
	// index finds a repeated key; it is made only once a key is not
	// greater than the one before (a sorted manifest, as every signed one
	// is, has no repeated key and needs none).
	var index map[string]int
	for n := 0; ; n++ {
		c := p.Peek()
		if c == closing {
			p.i++
			return entries, nil
		}
		if n > 0 {
			if c != ',' {
				return nil, fmt.Errorf("unexpected %q", c)
			}
			p.i++
		}
		name := strconv.Itoa(n)
		if open == '{' {
			s, ok, err := p.Str()
			if err != nil || !ok {
				return nil, fmt.Errorf("bad key at offset %d", p.i)
			}
			name = s
			if p.Peek() != ':' {
				return nil, fmt.Errorf("missing ':' after key %q", name)
			}
			p.i++
		}
		v, ok, err := p.strView()
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("value for %q is not a string", name)
		}
		k := NewKey(name)
		if index == nil && len(entries) > 0 && k.Str <= entries[len(entries)-1].Key.Str {
			index = make(map[string]int, len(entries))
			for i, e := range entries {
				index[e.Key.Str] = i
			}
		}
		if index != nil {
			if i, ok := index[k.Str]; ok {
				entries[i].Value = v
				continue
			}
			index[k.Str] = len(entries)
		}
		k.Pos = len(entries)
		entries = append(entries, Entry{Key: k, Value: v})
	}
}

// CheckJSON refuses what PHP's json_decode refuses and Go's decoder
// would accept or silently repair: invalid UTF-8, unpaired UTF-16
// surrogate escapes, and nesting deeper than 512.
func CheckJSON(data []byte) error {
	if !utf8.Valid(data) {
		return errors.New("invalid JSON: malformed UTF-8")
	}
	if !json.Valid(data) {
		var v any
		err := json.Unmarshal(data, &v)
		return fmt.Errorf("invalid JSON: %v", err)
	}
	depth := 0
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '{', '[':
			depth++
			if depth >= MaxJSONDepth { // PHP refuses 512 levels (checked with PHP 8.2)
				return fmt.Errorf("invalid JSON: nested deeper than %d", MaxJSONDepth)
			}
		case '}', ']':
			depth--
		case '"':
			end, err := checkSurrogates(data, i+1)
			if err != nil {
				return err
			}
			i = end
		}
	}
	return nil
}

// checkSurrogates scans the string starting at data[i] (after the quote)
// and returns the index of its closing quote.
func checkSurrogates(data []byte, i int) (int, error) {
	pendingHigh := false
	for ; i < len(data); i++ {
		c := data[i]
		if c == '"' {
			break
		}
		if c != '\\' {
			if pendingHigh {
				return 0, errors.New("invalid JSON: single unpaired UTF-16 surrogate")
			}
			continue
		}
		i++
		if data[i] != 'u' {
			if pendingHigh {
				return 0, errors.New("invalid JSON: single unpaired UTF-16 surrogate")
			}
			continue
		}
		v, _ := strconv.ParseUint(string(data[i+1:i+5]), 16, 16) // json.Valid checked the digits
		u := uint16(v)
		i += 4
		switch {
		case u >= 0xD800 && u < 0xDC00:
			if pendingHigh {
				return 0, errors.New("invalid JSON: single unpaired UTF-16 surrogate")
			}
			pendingHigh = true
		case u >= 0xDC00 && u < 0xE000:
			if !pendingHigh {
				return 0, errors.New("invalid JSON: single unpaired UTF-16 surrogate")
			}
			pendingHigh = false
		default:
			if pendingHigh {
				return 0, errors.New("invalid JSON: single unpaired UTF-16 surrogate")
			}
		}
	}
	if pendingHigh {
		return 0, errors.New("invalid JSON: single unpaired UTF-16 surrogate")
	}
	return i, nil
}
