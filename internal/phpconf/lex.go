package phpconf

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"
)

type tokKind uint8

const (
	tEOF    tokKind = iota
	tVar            // $name: text is the name without '$'
	tIdent          // a name, possibly namespaced (\OC, Foo\Bar): text as written
	tString         // a string literal: str is its value unless reason != ""
	tInt            // ival
	tFloat          // fval
	tPunct          // operator or punctuation: text
	tClose          // ?> (acts as ';')
)

type token struct {
	kind   tokKind
	reason uint8 // tString whose value cannot be evaluated: index into strReasons
	dot    bool  // a float written with a leading '.' (".5")
	line   int
	text   string // names, punctuation; a string literal's value
	num    uint64 // tInt: the int64; tFloat: the float64's bits
}

var strReasons = [...]string{"",
	"variable interpolation in a double-quoted string cannot be evaluated",
	"heredoc strings are not evaluated",
	"nowdoc strings are not evaluated"}

func (t token) ival() int64   { return int64(t.num) }
func (t token) fval() float64 { return math.Float64frombits(t.num) }

// maxTokens bounds the tokens of one file (a 2,000-key config has 30,000).
const maxTokens = 1 << 20

// SyntaxError is a file that PHP itself would refuse, or one this package
// refuses to read (too deep, leading content).
type SyntaxError struct {
	File string
	Line int
	Msg  string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// punctuation, longest first within each leading byte.
var puncts = []string{
	"<<=", ">>=", "**=", "...", "<=>", "===", "!==", "??=", "?->",
	"::", "=>", "->", "++", "--", "==", "!=", "<>", "<=", ">=", "&&", "||", "??", "?:",
	".=", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<<", ">>", "**", "#[",
	"(", ")", "[", "]", "{", "}", ",", ";", "=", ".", "+", "-", "*", "/", "%",
	"!", "?", ":", "<", ">", "&", "|", "^", "~", "@", "\\", "$", "`",
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 0x80 || (c|0x20 >= 'a' && c|0x20 <= 'z')
}

func isIdentChar(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

type lexer struct {
	file string
	src  string
	pos  int
	line int
	toks []token
}

func (l *lexer) errf(line int, format string, args ...any) error {
	return &SyntaxError{File: l.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// lex splits a PHP file into tokens. The file must start with "<?php"
// and may end with "?>" followed by at most one newline, as Nextcloud
// requires of its config files.
func lex(file, src string) ([]token, error) {
	l := &lexer{file: file, src: src, line: 1, toks: make([]token, 0, min(len(src)/4+16, maxTokens+1))}
	if err := l.openTag(); err != nil {
		return nil, err
	}
	for {
		if len(l.toks) > maxTokens {
			return nil, l.errf(l.line, "more than %d tokens", maxTokens)
		}
		done, err := l.next()
		if err != nil {
			return nil, err
		}
		if done {
			l.emitAt(tEOF, l.line, "")
			return l.toks, l.adjacent()
		}
	}
}

func (l *lexer) openTag() error {
	if len(l.src) >= 5 && strings.EqualFold(l.src[:5], "<?php") {
		if len(l.src) == 5 {
			l.pos = 5
			return nil
		}
		switch l.src[5] {
		case ' ', '\t', '\n', '\r':
			l.pos = 6
			if l.src[5] == '\n' {
				l.line++
			} else if l.src[5] == '\r' && len(l.src) > 6 && l.src[6] == '\n' {
				l.pos, l.line = 7, 2
			} else if l.src[5] == '\r' {
				l.line++
			}
			return nil
		}
	}
	if i := strings.Index(strings.ToLower(l.src), "<?php"); i > 0 {
		return l.errf(1, `content before "<?php" (Nextcloud refuses a config file with leading content)`)
	}
	return l.errf(1, `no "<?php" opening tag`)
}

// next lexes one token; it reports true at the end of the input.
func (l *lexer) next() (bool, error) {
	s := l.src
	for l.pos < len(s) {
		c := s[l.pos]
		switch {
		case c == '\n':
			l.line++
			l.pos++
		case c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f':
			l.pos++
		case c == '#' && !(l.pos+1 < len(s) && s[l.pos+1] == '['), c == '/' && l.pos+1 < len(s) && s[l.pos+1] == '/':
			// A one-line comment ends at the newline or at "?>".
			for l.pos < len(s) && s[l.pos] != '\n' {
				if s[l.pos] == '?' && l.pos+1 < len(s) && s[l.pos+1] == '>' {
					break
				}
				l.pos++
			}
		case c == '/' && l.pos+1 < len(s) && s[l.pos+1] == '*':
			end := strings.Index(s[l.pos+2:], "*/")
			if end < 0 {
				return false, l.errf(l.line, "unterminated comment")
			}
			l.line += strings.Count(s[l.pos:l.pos+2+end], "\n")
			l.pos += 2 + end + 2
		default:
			return false, l.token()
		}
	}
	return true, nil
}

func (l *lexer) emit(t token) { l.toks = append(l.toks, t) }

func (l *lexer) emitAt(kind tokKind, line int, text string) {
	l.toks = append(l.toks, token{kind: kind, line: line, text: text})
}

func (l *lexer) token() error {
	s, start, line := l.src, l.pos, l.line
	c := s[start]
	switch {
	case c == '?' && start+1 < len(s) && s[start+1] == '>':
		l.pos += 2
		// PHP swallows one newline after "?>"; anything else is output,
		// which makes Nextcloud throw ("Config file has leading content").
		if strings.HasPrefix(s[l.pos:], "\r\n") {
			l.pos += 2
		} else if l.pos < len(s) && (s[l.pos] == '\n' || s[l.pos] == '\r') {
			l.pos++
		}
		if l.pos < len(s) {
			return l.errf(line, `content after "?>" (PHP outputs it and Nextcloud refuses the file)`)
		}
		l.emitAt(tClose, line, "?>")
		return nil
	case c == '$' && start+1 < len(s) && isIdentStart(s[start+1]):
		e := start + 1
		for e < len(s) && isIdentChar(s[e]) {
			e++
		}
		l.pos = e
		l.emitAt(tVar, line, s[start+1:e])
		return nil
	case isIdentStart(c) || (c == '\\' && start+1 < len(s) && isIdentStart(s[start+1])):
		e := start
		for e < len(s) {
			if s[e] == '\\' && e+1 < len(s) && isIdentStart(s[e+1]) {
				e++
				continue
			}
			if !isIdentChar(s[e]) {
				break
			}
			e++
		}
		// b'...' and b"..." are binary string prefixes.
		if e-start == 1 && (c == 'b' || c == 'B') && e < len(s) && (s[e] == '\'' || s[e] == '"') {
			l.pos = e
			return l.token()
		}
		l.pos = e
		l.emitAt(tIdent, line, s[start:e])
		return nil
	case c == '\'':
		return l.single()
	case c == '"':
		return l.double()
	case c == '<' && strings.HasPrefix(s[start:], "<<<"):
		return l.heredoc()
	case c >= '0' && c <= '9', c == '.' && start+1 < len(s) && s[start+1] >= '0' && s[start+1] <= '9':
		return l.number()
	}
	if c == '\\' {
		return l.errf(line, `syntax error: unexpected "\\"`)
	}
	for _, p := range puncts {
		if strings.HasPrefix(s[start:], p) {
			l.pos += len(p)
			l.emitAt(tPunct, line, p)
			return nil
		}
	}
	return l.errf(line, "unexpected character %q", c)
}

func (l *lexer) single() error {
	s, line := l.src, l.line
	var b strings.Builder
	i := l.pos + 1
	for {
		if i >= len(s) {
			return l.errf(line, "unterminated string")
		}
		c := s[i]
		if c == '\'' {
			break
		}
		if c == '\n' {
			l.line++
		}
		if c == '\\' && i+1 < len(s) && (s[i+1] == '\\' || s[i+1] == '\'') {
			b.WriteByte(s[i+1])
			i += 2
			continue
		}
		b.WriteByte(c)
		i++
	}
	l.pos = i + 1
	l.emitAt(tString, line, b.String())
	return nil
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c|0x20 >= 'a' && c|0x20 <= 'f')
}

func hexVal(c byte) int {
	if c <= '9' {
		return int(c - '0')
	}
	return int(c|0x20-'a') + 10
}

func (l *lexer) double() error {
	s, line := l.src, l.line
	var b strings.Builder
	reason := uint8(0)
	i := l.pos + 1
	for {
		if i >= len(s) {
			return l.errf(line, "unterminated string")
		}
		c := s[i]
		if c == '"' {
			break
		}
		switch {
		case c == '\n':
			l.line++
			b.WriteByte(c)
			i++
		case c == '$' && i+1 < len(s) && (isIdentStart(s[i+1]) || s[i+1] == '{'):
			reason = 1
			b.WriteByte(c)
			i++
		case c == '{' && i+1 < len(s) && s[i+1] == '$':
			if i+2 >= len(s) || !(isIdentStart(s[i+2]) || s[i+2] == '$' || s[i+2] == '{') {
				return l.errf(l.line, "syntax error in string interpolation")
			}
			reason = 1
			b.WriteByte(c)
			i++
		case c == '\\' && i+1 < len(s):
			n, err := l.escape(&b, s, i+1, line)
			if err != nil {
				return err
			}
			i = n
		default:
			b.WriteByte(c)
			i++
		}
	}
	l.pos = i + 1
	l.emit(token{kind: tString, line: line, text: b.String(), reason: reason})
	return nil
}

// escape decodes the escape whose first byte after '\' is at s[i]; it
// returns the index after it. Unknown escapes stay literal, backslash
// included, as in PHP.
func (l *lexer) escape(b *strings.Builder, s string, i, line int) (int, error) {
	c := s[i]
	switch c {
	case 'n':
		b.WriteByte('\n')
	case 't':
		b.WriteByte('\t')
	case 'r':
		b.WriteByte('\r')
	case 'v':
		b.WriteByte('\v')
	case 'e':
		b.WriteByte(0x1b)
	case 'f':
		b.WriteByte('\f')
	case '\\', '$', '"':
		b.WriteByte(c)
	case '0', '1', '2', '3', '4', '5', '6', '7':
		v, j := 0, i
		for j < len(s) && j < i+3 && s[j] >= '0' && s[j] <= '7' {
			v = v*8 + int(s[j]-'0')
			j++
		}
		b.WriteByte(byte(v)) // PHP wraps \400..\777 (with a warning)
		return j, nil
	case 'x':
		if i+1 < len(s) && isHex(s[i+1]) {
			v, j := hexVal(s[i+1]), i+2
			if j < len(s) && isHex(s[j]) {
				v = v*16 + hexVal(s[j])
				j++
			}
			b.WriteByte(byte(v))
			return j, nil
		}
		b.WriteString(`\x`)
	case 'u':
		if i+1 < len(s) && s[i+1] == '{' {
			j := i + 2
			var v uint64
			for j < len(s) && isHex(s[j]) {
				if v <= 0x10FFFF {
					v = v*16 + uint64(hexVal(s[j]))
				}
				j++
			}
			if j >= len(s) || s[j] != '}' || j == i+2 {
				return 0, l.errf(line, `invalid UTF-8 codepoint escape sequence`)
			}
			if v > 0x10FFFF {
				return 0, l.errf(line, `invalid UTF-8 codepoint escape sequence: codepoint too large`)
			}
			b.WriteString(utf8Encode(rune(v)))
			return j + 1, nil
		}
		b.WriteString(`\u`)
	default:
		b.WriteByte('\\')
		return i, nil
	}
	return i + 1, nil
}

// utf8Encode encodes like PHP's \u{}: surrogates are encoded too.
func utf8Encode(r rune) string {
	if r >= 0xD800 && r <= 0xDFFF {
		return string([]byte{0xE0 | byte(r>>12), 0x80 | byte(r>>6)&0x3F, 0x80 | byte(r)&0x3F})
	}
	var buf [4]byte
	n := utf8.EncodeRune(buf[:], r)
	return string(buf[:n])
}

// heredoc skips a heredoc or nowdoc: its value is not evaluated.
func (l *lexer) heredoc() error {
	s, line := l.src, l.line
	i := l.pos + 3
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	quote := byte(0)
	if i < len(s) && (s[i] == '\'' || s[i] == '"') {
		quote = s[i]
		i++
	}
	st := i
	for i < len(s) && isIdentChar(s[i]) {
		i++
	}
	id := s[st:i]
	if id == "" || !isIdentStart(id[0]) {
		return l.errf(line, "invalid heredoc")
	}
	if quote != 0 {
		if i >= len(s) || s[i] != quote {
			return l.errf(line, "invalid heredoc")
		}
		i++
	}
	if i >= len(s) || (s[i] != '\n' && s[i] != '\r') {
		return l.errf(line, "invalid heredoc")
	}
	// The closing marker is the identifier at the start of a line, after
	// optional indentation, not followed by an identifier character.
	for {
		nl := strings.IndexByte(s[i:], '\n')
		if nl < 0 {
			return l.errf(line, "unterminated heredoc")
		}
		i += nl + 1
		l.line++
		j := i
		for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
			j++
		}
		if strings.HasPrefix(s[j:], id) && (j+len(id) >= len(s) || !isIdentChar(s[j+len(id)])) {
			l.pos = j + len(id)
			r := uint8(2)
			if quote == '\'' {
				r = 3
			}
			l.emit(token{kind: tString, line: line, reason: r})
			return nil
		}
	}
}

func digitsOK(d string, ok func(byte) bool) bool {
	if d == "" || d[0] == '_' || d[len(d)-1] == '_' || strings.Contains(d, "__") {
		return false
	}
	for i := 0; i < len(d); i++ {
		if d[i] != '_' && !ok(d[i]) {
			return false
		}
	}
	return true
}

func isDec(c byte) bool { return c >= '0' && c <= '9' }

func (l *lexer) number() error {
	s, start, line := l.src, l.pos, l.line
	if s[start] == '0' && start+1 < len(s) {
		base := 0
		var ok func(byte) bool
		switch s[start+1] | 0x20 {
		case 'x':
			base, ok = 16, isHex
		case 'o':
			base, ok = 8, func(c byte) bool { return c >= '0' && c <= '7' }
		case 'b':
			base, ok = 2, func(c byte) bool { return c == '0' || c == '1' }
		}
		if base != 0 {
			e := start + 2
			for e < len(s) && (ok(s[e]) || s[e] == '_') {
				e++
			}
			d := s[start+2 : e]
			if !digitsOK(d, ok) {
				return l.errf(line, "invalid numeric literal")
			}
			l.pos = e
			l.emitInt(strings.ReplaceAll(d, "_", ""), base, line)
			return nil
		}
	}
	e := start
	for e < len(s) && (isDec(s[e]) || s[e] == '_') {
		e++
	}
	intPart := s[start:e]
	isFloat := false
	if e < len(s) && s[e] == '.' && (e+1 >= len(s) || s[e+1] != '.') {
		// "1." is a float; "1.." is 1 followed by "..". 1.e3 is 1000.
		isFloat = true
		e++
		for e < len(s) && (isDec(s[e]) || s[e] == '_') {
			e++
		}
	}
	if e < len(s) && s[e]|0x20 == 'e' {
		j := e + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if j < len(s) && isDec(s[j]) {
			for j < len(s) && (isDec(s[j]) || s[j] == '_') {
				j++
			}
			isFloat = true
			e = j
		}
	}
	lit := s[start:e]
	for _, part := range strings.FieldsFunc(lit, func(r rune) bool { return r == '.' || r == 'e' || r == 'E' || r == '+' || r == '-' }) {
		if !digitsOK(part, isDec) {
			return l.errf(line, "invalid numeric literal")
		}
	}
	l.pos = e
	clean := strings.ReplaceAll(lit, "_", "")
	if isFloat {
		f, err := strconv.ParseFloat(clean, 64)
		if err != nil && !isRangeErr(err) {
			return l.errf(line, "invalid numeric literal")
		}
		l.emit(token{kind: tFloat, line: line, num: math.Float64bits(f), dot: lit[0] == '.'})
		return nil
	}
	d := strings.ReplaceAll(intPart, "_", "")
	if len(d) > 1 && d[0] == '0' {
		// Leading zero: octal.
		for i := 0; i < len(d); i++ {
			if d[i] > '7' {
				return l.errf(line, "invalid numeric literal")
			}
		}
		l.emitInt(d[1:], 8, line)
		return nil
	}
	l.emitInt(d, 10, line)
	return nil
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// emitInt emits an integer literal, or a float when it overflows, as PHP.
func (l *lexer) emitInt(d string, base, line int) {
	if d == "" {
		d = "0"
	}
	if v, err := strconv.ParseInt(d, base, 64); err == nil {
		l.emit(token{kind: tInt, line: line, num: uint64(v)})
		return
	}
	var f float64
	if base == 10 {
		f, _ = strconv.ParseFloat(d, 64)
	} else {
		n, _ := new(big.Int).SetString(d, base)
		f, _ = new(big.Float).SetInt(n).Float64()
		if math.IsInf(f, 0) {
			f = math.Inf(1)
		}
	}
	l.emit(token{kind: tFloat, line: line, num: math.Float64bits(f)})
}

// operatorWords are the names that may follow a value.
var operatorWords = map[string]bool{"and": true, "or": true, "xor": true, "instanceof": true, "as": true, "insteadof": true}

// valueWords are the names that are values.
var valueWords = map[string]bool{"true": true, "false": true, "null": true, "__dir__": true, "__file__": true, "__line__": true}

// adjacent rejects two values with no operator between them ("1.'a'" is
// the float "1." then a string: PHP's syntax error).
func (l *lexer) adjacent() error {
	isValue := func(k tokKind) bool { return k == tString || k == tInt || k == tFloat || k == tVar }
	for i := 1; i < len(l.toks); i++ {
		a, b := l.toks[i-1], l.toks[i]
		if b.dot && (a.kind == tPunct && (a.text == ")" || a.text == "]") || a.kind == tIdent && valueWords[strings.ToLower(a.text)]) {
			// "(...).5": PHP reads ".5", a float, not a concatenation
			return l.errf(b.line, "syntax error: unexpected number after a value")
		}
		if !isValue(a.kind) {
			continue
		}
		if isValue(b.kind) || (b.kind == tIdent && !operatorWords[strings.ToLower(b.text)]) {
			return l.errf(b.line, "syntax error: unexpected %s after a value", describeTok(b))
		}
	}
	return nil
}

func describeTok(t token) string {
	switch t.kind {
	case tString:
		return "string"
	case tInt, tFloat:
		return "number"
	case tVar:
		return "$" + t.text
	}
	return strconv.Quote(t.text)
}
