package phpconf

import (
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
)

// maxDepth bounds the nesting of arrays, parentheses and blocks.
const maxDepth = 64

// Env is what a file's evaluation knows about where it runs.
type Env struct {
	// File is the file's path, with symbolic links resolved, as PHP's
	// __FILE__ holds it; __DIR__ is its directory. Empty: both UNKNOWN.
	File string
	// ServerRoot is OC::$SERVERROOT. Empty: UNKNOWN.
	ServerRoot string
	// includes counts the include statements being evaluated (nested).
	includes int
}

// maxIncludes bounds nested include statements (a file including itself).
const maxIncludes = 8

// Scope is the variables a file leaves set.
type Scope struct {
	vars   map[string]Value
	opaque *Reason
	// gone: variables unset since opaque was set (readData unsets
	// $CONFIG before each file, whatever an earlier include did).
	gone map[string]bool
}

// newScope returns an empty scope.
func newScope() *Scope { return &Scope{vars: map[string]Value{}, gone: map[string]bool{}} }

// unset removes a variable.
func (s *Scope) unset(name string) {
	delete(s.vars, name)
	if s.opaque != nil {
		s.gone[name] = true
	}
}

// Var returns a variable's value; ok is false when it is not set. Every
// variable is UNKNOWN after a statement such as include or eval.
func (s *Scope) Var(name string) (Value, bool) {
	if v, ok := s.vars[name]; ok {
		return v, true
	}
	if s.opaque != nil && !s.gone[name] {
		return unknownR(s.opaque), true
	}
	return Value{}, false
}

// Eval evaluates the PHP source of one file in a fresh scope. name is used
// in errors and reasons.
func Eval(name string, src []byte, env Env) (*Scope, error) {
	sc := newScope()
	if err := evalIn(sc, name, src, env); err != nil {
		return nil, err
	}
	return sc, nil
}

// evalIn evaluates the PHP source of one file in the scope sc, as PHP's
// include does: the file sees and changes sc's variables.
func evalIn(sc *Scope, name string, src []byte, env Env) error {
	toks, err := lex(name, string(src))
	if err != nil {
		return err
	}
	e := &evaluator{file: name, env: env, toks: toks, sc: sc}
	for e.peek().kind != tEOF {
		if err := e.statement(); err != nil {
			return err
		}
	}
	return nil
}

type evaluator struct {
	file  string
	env   Env
	toks  []token
	p     int
	depth int
	sc    *Scope
	cond  []int // lines of the ifs whose bodies are being evaluated
	rest  int   // line of a conditional return: the rest is conditional
	dead  bool  // after an unconditional return
	work  int   // entries copied or moved: bounded by maxWork
}

// maxWork bounds the array entries copied (copy on write) or moved (unset)
// while evaluating one file, against quadratic inputs.
const maxWork = 1 << 22

func (e *evaluator) peek() token { return e.toks[e.p] }

func (e *evaluator) peekAt(n int) token {
	if e.p+n < len(e.toks) {
		return e.toks[e.p+n]
	}
	return e.toks[len(e.toks)-1]
}

func (e *evaluator) isPunct(s string) bool {
	t := e.toks[e.p]
	return t.kind == tPunct && t.text == s
}

func (e *evaluator) isIdent(name string) bool {
	t := e.toks[e.p]
	return t.kind == tIdent && strings.EqualFold(t.text, name)
}

func (e *evaluator) errf(line int, format string, args ...any) error {
	return &SyntaxError{File: e.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

func (e *evaluator) unexpected() error {
	t := e.peek()
	switch t.kind {
	case tEOF:
		return e.errf(t.line, "syntax error: unexpected end of file")
	case tString:
		return e.errf(t.line, "syntax error: unexpected string")
	case tInt, tFloat:
		return e.errf(t.line, "syntax error: unexpected number")
	case tVar:
		return e.errf(t.line, "syntax error: unexpected $%s", t.text)
	}
	return e.errf(t.line, "syntax error: unexpected %q", t.text)
}

func (e *evaluator) enter() error {
	e.depth++
	if e.depth > maxDepth {
		return e.errf(e.peek().line, "nesting deeper than %d", maxDepth)
	}
	return nil
}

func (e *evaluator) leave() { e.depth-- }

// condReason is the reason an assignment at line is conditional, or nil.
func (e *evaluator) condReason(line int) *Reason {
	if n := len(e.cond); n > 0 {
		return &Reason{File: e.file, Line: line, Why: fmt.Sprintf("conditional assignment (under the if at line %d, whose condition cannot be evaluated)", e.cond[n-1])}
	}
	if e.rest > 0 {
		return &Reason{File: e.file, Line: line, Why: fmt.Sprintf("conditional assignment (after the conditional return at line %d)", e.rest)}
	}
	return nil
}

func (e *evaluator) endStatement() error {
	if e.isPunct(";") || e.peek().kind == tClose {
		e.p++
		return nil
	}
	if e.peek().kind == tEOF && e.p > 0 && e.toks[e.p-1].kind == tClose {
		return nil
	}
	return e.unexpected()
}

// statement evaluates one statement.
func (e *evaluator) statement() error {
	if err := e.enter(); err != nil {
		return err
	}
	defer e.leave()
	if e.work > maxWork {
		return e.errf(e.peek().line, "too complex to evaluate (more than %d array entries copied)", maxWork)
	}
	t := e.peek()
	switch t.kind {
	case tClose:
		e.p++
		return nil
	case tPunct:
		switch t.text {
		case ";":
			e.p++
			return nil
		case "{":
			e.p++
			if err := e.statements(); err != nil {
				return err
			}
			if !e.isPunct("}") {
				return e.unexpected()
			}
			e.p++
			return nil
		case "}", ")", "]":
			return e.unexpected()
		}
	case tVar:
		return e.assignment()
	case tIdent:
		switch strings.ToLower(t.text) {
		case "if":
			return e.ifStatement()
		case "unset":
			return e.unset()
		case "include", "require":
			if ok, err := e.include(); ok || err != nil {
				return err
			}
			return e.skipStatement()
		case "return":
			line := t.line
			e.p++
			if err := e.skipStatement(); err != nil {
				return err
			}
			if len(e.cond) > 0 || e.rest > 0 {
				if e.rest == 0 {
					e.rest = line
				}
			} else {
				e.dead = true
			}
			return nil
		case "else", "elseif", "endif", "endforeach", "endfor", "endwhile", "endswitch", "enddeclare", "case", "default", "catch", "finally":
			return e.unexpected()
		}
	}
	return e.skipStatement()
}

// include evaluates `include PATH;` or `require PATH;` where it runs
// unconditionally and PATH is an absolute path known here (__DIR__ .
// '/config.php'): the file is evaluated in the same scope, as PHP does.
// ok is false, with nothing consumed, for any other include, which the
// caller skips (and which then makes every variable UNKNOWN). include_once
// is never evaluated: whether PHP runs it depends on what was included
// before.
func (e *evaluator) include() (ok bool, err error) {
	start := e.p
	if len(e.cond) > 0 || e.rest > 0 || e.dead || e.env.includes >= maxIncludes {
		return false, nil
	}
	e.p++
	v, err := e.expr(false)
	path, isStr := v.Str()
	if err != nil || !isStr || !filepath.IsAbs(path) || !(e.isPunct(";") || e.peek().kind == tClose) {
		e.p = start
		return false, nil
	}
	data, rerr := readFile(path)
	if rerr != nil {
		e.p = start
		return false, nil // PHP warns (include) or dies (require): not known here
	}
	if err := e.endStatement(); err != nil {
		return false, err
	}
	env := e.env
	env.File = resolveFile(path)
	env.includes++
	return true, evalIn(e.sc, path, data, env)
}

// statements evaluates statements up to a '}', the end of the file, or one
// of the idents in stop (alternative syntax).
func (e *evaluator) statements(stop ...string) error {
	for {
		t := e.peek()
		if t.kind == tEOF || (t.kind == tPunct && t.text == "}") {
			return nil
		}
		if t.kind == tIdent {
			for _, s := range stop {
				if strings.EqualFold(t.text, s) {
					return nil
				}
			}
		}
		if err := e.statement(); err != nil {
			return err
		}
	}
}

func (e *evaluator) ifStatement() error {
	ifLine := e.peek().line
	e.p++
	if err := e.skipParens(); err != nil {
		return err
	}
	e.cond = append(e.cond, ifLine)
	defer func() { e.cond = e.cond[:len(e.cond)-1] }()
	if e.isPunct(":") {
		e.p++
		for {
			if err := e.statements("elseif", "else", "endif"); err != nil {
				return err
			}
			switch {
			case e.isIdent("elseif"):
				e.p++
				if err := e.skipParens(); err != nil {
					return err
				}
				if !e.isPunct(":") {
					return e.unexpected()
				}
				e.p++
			case e.isIdent("else"):
				e.p++
				if !e.isPunct(":") {
					return e.unexpected()
				}
				e.p++
			case e.isIdent("endif"):
				e.p++
				return e.endStatement()
			default:
				return e.unexpected()
			}
		}
	}
	if err := e.statement(); err != nil {
		return err
	}
	for {
		switch {
		case e.isIdent("elseif"):
			e.p++
			if err := e.skipParens(); err != nil {
				return err
			}
			if err := e.statement(); err != nil {
				return err
			}
		case e.isIdent("else"):
			e.p++
			return e.statement()
		default:
			return nil
		}
	}
}

// skipParens skips a parenthesised group (a condition), applying the
// effects of what it skips.
func (e *evaluator) skipParens() error {
	if !e.isPunct("(") {
		return e.unexpected()
	}
	start := e.p
	if err := e.skipBalanced(); err != nil {
		return err
	}
	e.effects(start, e.p)
	return nil
}

// skipBalanced skips from an opening bracket to its match.
func (e *evaluator) skipBalanced() error {
	depth := 0
	for {
		t := e.peek()
		switch t.kind {
		case tEOF:
			return e.unexpected()
		case tPunct:
			switch t.text {
			case "(", "[", "{", "#[":
				depth++
			case ")", "]", "}":
				depth--
				if depth < 0 {
					return e.unexpected()
				}
			}
		}
		e.p++
		if depth == 0 {
			return nil
		}
	}
}

// skipStatement skips one statement it does not evaluate and applies its
// possible effects: every variable it names becomes UNKNOWN.
func (e *evaluator) skipStatement() error {
	start := e.p
	if err := e.skipStmt(0); err != nil {
		return err
	}
	e.effects(start, e.p)
	return nil
}

func (e *evaluator) skipStmt(level int) error {
	if level > maxDepth {
		return e.errf(e.peek().line, "nesting deeper than %d", maxDepth)
	}
	t := e.peek()
	if t.kind == tPunct && t.text == "{" {
		return e.skipBalanced()
	}
	if t.kind == tIdent {
		kw := strings.ToLower(t.text)
		switch kw {
		case "foreach", "for", "while", "switch", "declare", "if", "elseif":
			e.p++
			if !e.isPunct("(") {
				return e.unexpected()
			}
			if err := e.skipBalanced(); err != nil {
				return err
			}
			if e.isPunct(":") {
				return e.skipAlt(kw)
			}
			if err := e.skipStmt(level + 1); err != nil {
				return err
			}
			if kw == "if" || kw == "elseif" {
				for e.isIdent("elseif") || e.isIdent("else") {
					if e.isIdent("else") {
						e.p++
						return e.skipStmt(level + 1)
					}
					if err := e.skipStmt(level + 1); err != nil {
						return err
					}
				}
			}
			return nil
		case "try":
			e.p++
			if err := e.skipBlock(); err != nil {
				return err
			}
			for e.isIdent("catch") {
				e.p++
				if !e.isPunct("(") {
					return e.unexpected()
				}
				if err := e.skipBalanced(); err != nil {
					return err
				}
				if err := e.skipBlock(); err != nil {
					return err
				}
			}
			if e.isIdent("finally") {
				e.p++
				return e.skipBlock()
			}
			return nil
		case "do":
			e.p++
			if err := e.skipStmt(level + 1); err != nil {
				return err
			}
			if !e.isIdent("while") {
				return e.unexpected()
			}
			e.p++
			if !e.isPunct("(") {
				return e.unexpected()
			}
			if err := e.skipBalanced(); err != nil {
				return err
			}
			return e.endStatement()
		case "function", "class", "interface", "trait", "enum", "abstract", "final", "readonly":
			// A declaration: up to and including its body.
			for !e.isPunct("{") {
				if e.peek().kind == tEOF || e.isPunct(";") {
					return e.unexpected()
				}
				if e.isPunct("(") {
					if err := e.skipBalanced(); err != nil {
						return err
					}
					continue
				}
				e.p++
			}
			return e.skipBalanced()
		}
	}
	// An expression statement: up to ';' or '?>' outside brackets.
	for {
		t := e.peek()
		switch t.kind {
		case tEOF:
			return e.unexpected()
		case tClose:
			e.p++
			return nil
		case tPunct:
			switch t.text {
			case ";":
				e.p++
				return nil
			case "(", "[", "{", "#[":
				if err := e.skipBalanced(); err != nil {
					return err
				}
				continue
			case ")", "]", "}":
				return e.unexpected()
			}
		}
		e.p++
	}
}

func (e *evaluator) skipBlock() error {
	if !e.isPunct("{") {
		return e.unexpected()
	}
	return e.skipBalanced()
}

// skipAlt skips the body of `kw (...): ... endkw;`.
func (e *evaluator) skipAlt(kw string) error {
	end := "end" + kw
	if kw == "elseif" {
		end = "endif"
	}
	e.p++ // ':'
	for {
		t := e.peek()
		switch {
		case t.kind == tEOF:
			return e.unexpected()
		case t.kind == tIdent && strings.EqualFold(t.text, end):
			e.p++
			return e.endStatement()
		case t.kind == tIdent && strings.EqualFold(t.text, kw) && e.peekAt(1).kind == tPunct && e.peekAt(1).text == "(":
			e.p++
			if err := e.skipBalanced(); err != nil {
				return err
			}
			if e.isPunct(":") {
				if err := e.skipAlt(kw); err != nil {
					return err
				}
			}
		case t.kind == tPunct && (t.text == "(" || t.text == "[" || t.text == "{" || t.text == "#["):
			if err := e.skipBalanced(); err != nil {
				return err
			}
		case t.kind == tPunct && (t.text == ")" || t.text == "]" || t.text == "}"):
			return e.unexpected()
		default:
			e.p++
		}
	}
}

// dangerous names make every variable of the file UNKNOWN.
var dangerous = map[string]bool{
	"include": true, "include_once": true, "require": true, "require_once": true,
	"eval": true, "extract": true, "parse_str": true, "global": true,
	"namespace": true, "use": true, "exit": true, "die": true, "throw": true,
	"mb_parse_str": true, "import_request_variables": true,
}

// effects applies what the skipped tokens [from, to) may have done.
func (e *evaluator) effects(from, to int) {
	if e.dead {
		return
	}
	for i := from; i < to; i++ {
		t := e.toks[i]
		line := t.line
		switch {
		case t.kind == tIdent && dangerous[strings.ToLower(t.text)],
			t.kind == tVar && t.text == "GLOBALS",
			t.kind == tPunct && (t.text == "$" || t.text == "`"):
			what := t.text
			if t.kind == tVar {
				what = "$" + what
			}
			r := &Reason{File: e.file, Line: line, Why: fmt.Sprintf("%s at line %d may change any variable", what, line)}
			for name := range e.sc.vars {
				e.sc.vars[name] = unknownR(r)
			}
			if e.sc.opaque == nil {
				e.sc.opaque = r
			}
			clear(e.sc.gone)
		}
	}
	for i := from; i < to; i++ {
		t := e.toks[i]
		if t.kind == tVar && t.text != "this" {
			if cur, ok := e.sc.vars[t.text]; ok && cur.kind == Unknown {
				continue
			}
			e.sc.vars[t.text] = unknown(e.file, t.line, "$%s is used by a statement that is not evaluated (line %d)", t.text, t.line)
		}
	}
}

type pathElem struct {
	key    Value
	append bool
	line   int
}

// lvalue parses $name[...]... ; ok is false (and nothing is consumed) when
// what follows is not a plain variable or array path.
func (e *evaluator) lvalue() (string, []pathElem, bool, error) {
	start := e.p
	name := e.peek().text
	e.p++
	var path []pathElem
	for e.isPunct("[") {
		line := e.peek().line
		e.p++
		if e.isPunct("]") {
			e.p++
			path = append(path, pathElem{append: true, line: line})
			continue
		}
		k, err := e.expr(false)
		if err != nil {
			return "", nil, false, err
		}
		if !e.isPunct("]") {
			e.p = start
			return "", nil, false, nil
		}
		e.p++
		path = append(path, pathElem{key: k, line: line})
		if len(path) > maxDepth {
			return "", nil, false, e.errf(line, "nesting deeper than %d", maxDepth)
		}
	}
	return name, path, true, nil
}

func (e *evaluator) assignment() error {
	start := e.p
	line := e.peek().line
	name, path, ok, err := e.lvalue()
	if err != nil {
		return err
	}
	if !ok || !e.isPunct("=") || e.peekAt(1).kind == tPunct && e.peekAt(1).text == "&" || name == "this" || name == "GLOBALS" {
		e.p = start
		return e.skipStatement()
	}
	e.p++
	v, err := e.expr(false)
	if err != nil {
		return err
	}
	if err := e.endStatement(); err != nil {
		return err
	}
	if e.dead {
		return nil
	}
	e.assign(name, path, v, line)
	return nil
}

func (e *evaluator) assign(name string, path []pathElem, v Value, line int) {
	cond := e.condReason(line)
	cur, had := e.sc.Var(name)
	if !had {
		cur = Value{}
	}
	if len(path) == 0 {
		if cond == nil {
			e.sc.vars[name] = v
			return
		}
		e.sc.vars[name] = condWhole(cur, had, v, cond)
		return
	}
	e.sc.vars[name] = e.setIn(cur, path, v, cond, true)
}

// condWhole is a variable after `$x = v` that may or may not have run.
func condWhole(cur Value, had bool, v Value, cond *Reason) Value {
	if v.kind != Array || (had && cur.kind != Null && cur.kind != Array) {
		return unknownR(cond)
	}
	var a *Arr
	if had && cur.kind == Array {
		a = cur.a.clone()
		for i := range a.vals {
			old := share(a.vals[i])
			a.vals[i] = unknownR(cond)
			if _, inV := v.a.idx[a.keys[i]]; !inV && v.a.open == nil {
				// the old value, or absent if the assignment ran
				switch {
				case old.kind != Unknown:
					a.vals[i].orAbsent = &old
				case old.orAbsent != nil:
					a.vals[i].orAbsent = old.orAbsent // absent, or that value
				}
			}
		}
		a.size = len(a.vals)
	} else {
		a = newArr()
	}
	for _, k := range v.a.keys {
		a.setMaybe(k, cond)
	}
	a.open = firstReason(a.open, v.a.open)
	if a.hasNext || v.a.hasNext {
		// The next implicit index depends on which branch ran.
		a.nextUnknown = firstReason(a.nextUnknown, cond)
	}
	return Value{kind: Array, a: a}
}

func firstReason(a, b *Reason) *Reason {
	if a != nil {
		return a
	}
	return b
}

// setIn returns cur after `cur[path...] = v`.
func (e *evaluator) setIn(cur Value, path []pathElem, v Value, cond *Reason, root bool) Value {
	if len(path) == 0 {
		if cond != nil {
			return unknownR(cond)
		}
		return v
	}
	el := path[0]
	var a *Arr
	switch {
	case cur.kind == Unknown:
		return cur
	case cur.kind == Null, cur.kind == Bool && !cur.b:
		if cond != nil && !root {
			return unknownR(cond)
		}
		a = newArr()
		if cond != nil {
			// the variable is either unset or this array: its entries
			// are all UNKNOWN, which says both.
			a.hasNext = false
		}
	case cur.kind == Array:
		a = cur.a
		if a.shared {
			e.work += len(a.keys)
			a = a.clone()
		}
	default:
		return unknown(e.file, el.line, "cannot use a %s as an array", cur.kind)
	}
	out := Value{kind: Array, a: a}
	var k Key
	if el.append {
		if cond != nil {
			if a.open == nil {
				a.open = cond
			}
			return out
		}
		nk, ok := a.nextKey()
		if !ok {
			a.appendUnknown(&Reason{File: e.file, Line: el.line, Why: "the index of an appended element cannot be known"})
			return out
		}
		k = nk
	} else {
		if el.key.kind == Unknown {
			a.openUp(&Reason{File: e.file, Line: el.line, Why: "array key: " + el.key.r.Why})
			return out
		}
		var why string
		if k, why = toKey(el.key); why != "" {
			a.openUp(&Reason{File: e.file, Line: el.line, Why: why})
			return out
		}
	}
	child, exists := a.Get(k)
	if !exists {
		child = Value{}
	}
	if cond != nil && (len(path) == 1 || child.kind != Array) {
		a.setMaybe(k, cond)
		return out
	}
	nv := e.setIn(child, path[1:], v, cond, false)
	if valSize(nv) > maxSize {
		nv = unknown(e.file, el.line, "value too large to evaluate")
	}
	a.set(k, nv)
	return out
}

func (e *evaluator) unset() error {
	start := e.p
	e.p++
	if !e.isPunct("(") {
		return e.unexpected()
	}
	e.p++
	type target struct {
		name string
		path []pathElem
		line int
	}
	var targets []target
	for {
		if e.peek().kind != tVar {
			e.p = start
			return e.skipStatement()
		}
		line := e.peek().line
		name, path, ok, err := e.lvalue()
		if err != nil {
			return err
		}
		if !ok {
			e.p = start
			return e.skipStatement()
		}
		targets = append(targets, target{name, path, line})
		if e.isPunct(",") {
			e.p++
			if e.isPunct(")") {
				break
			}
			continue
		}
		break
	}
	if !e.isPunct(")") {
		e.p = start
		return e.skipStatement()
	}
	e.p++
	if err := e.endStatement(); err != nil {
		return err
	}
	if e.dead {
		return nil
	}
	for _, t := range targets {
		cond := e.condReason(t.line)
		if len(t.path) == 0 {
			if cond != nil {
				e.sc.vars[t.name] = unknownR(cond)
			} else {
				e.sc.unset(t.name)
			}
			continue
		}
		cur, had := e.sc.Var(t.name)
		if !had {
			continue
		}
		if cond != nil {
			e.sc.vars[t.name] = e.setIn(cur, t.path, Value{}, cond, true)
			continue
		}
		e.sc.vars[t.name] = e.unsetIn(cur, t.path)
	}
	return nil
}

func (e *evaluator) unsetIn(cur Value, path []pathElem) Value {
	if cur.kind != Array {
		return cur // unset of an offset of a non-array: nothing (or an error)
	}
	el := path[0]
	a := cur.a
	e.work += len(a.keys)
	if a.shared {
		a = a.clone()
	}
	out := Value{kind: Array, a: a}
	if el.append {
		return cur // PHP: cannot use [] for unsetting (compile error)
	}
	if el.key.kind == Unknown {
		a.openUp(&Reason{File: e.file, Line: el.line, Why: "unset key: " + el.key.r.Why})
		return out
	}
	k, why := toKey(el.key)
	if why != "" {
		a.openUp(&Reason{File: e.file, Line: el.line, Why: why})
		return out
	}
	if len(path) == 1 {
		a.del(k)
		return out
	}
	child, exists := a.Get(k)
	if !exists {
		return cur
	}
	if child.kind == Unknown {
		return out
	}
	a.set(k, e.unsetIn(child, path[1:]))
	return out
}

func (a *Arr) del(k Key) {
	i, ok := a.idx[k]
	if !ok {
		return
	}
	a.size -= valSize(a.vals[i])
	a.keys = append(a.keys[:i], a.keys[i+1:]...)
	a.vals = append(a.vals[:i], a.vals[i+1:]...)
	delete(a.idx, k)
	for j := i; j < len(a.keys); j++ {
		a.idx[a.keys[j]] = j
	}
}

// atTerm reports whether the next token ends an expression.
func (e *evaluator) atTerm(arrow bool) bool {
	t := e.peek()
	switch t.kind {
	case tEOF, tClose:
		return true
	case tPunct:
		switch t.text {
		case ",", ";", ")", "]", "}":
			return true
		case "=>":
			return arrow
		}
	}
	return false
}

// expr evaluates an expression. arrow: "=>" ends it (an array element's
// key). What it cannot evaluate it skips, up to the end of the
// expression, and returns as UNKNOWN.
func (e *evaluator) expr(arrow bool) (Value, error) {
	if err := e.enter(); err != nil {
		return Value{}, err
	}
	defer e.leave()
	start := e.p
	if e.atTerm(arrow) {
		return Value{}, e.unexpected()
	}
	v, err := e.concat()
	if err != nil {
		return Value{}, err
	}
	if e.atTerm(arrow) {
		return v, nil
	}
	t := e.peek()
	if t.kind == tVar || t.kind == tString || t.kind == tInt || t.kind == tFloat ||
		t.kind == tIdent && !operatorWords[strings.ToLower(t.text)] && !prefixWords[strings.ToLower(t.text)] {
		// An operand followed by another: no operator starts that way.
		return Value{}, e.unexpected()
	}
	if v.kind != Unknown {
		v = unknown(e.file, t.line, "%s cannot be evaluated", describe(t, e.peekAt(1)))
	}
	for !e.atTerm(arrow) {
		if t := e.peek(); t.kind == tPunct && (t.text == "(" || t.text == "[" || t.text == "{" || t.text == "#[") {
			if err := e.skipBalanced(); err != nil {
				return Value{}, err
			}
			continue
		}
		e.p++
	}
	e.effects(start, e.p)
	return v, nil
}

func describe(t, next token) string {
	switch t.kind {
	case tIdent:
		if next.kind == tPunct && next.text == "(" {
			return t.text + "()"
		}
		if next.kind == tPunct && next.text == "::" {
			return t.text + "::"
		}
		return "constant " + t.text
	case tVar:
		return "$" + t.text
	case tPunct:
		return "operator " + t.text
	}
	return "this expression"
}

func (e *evaluator) concat() (Value, error) {
	v, err := e.unary()
	if err != nil {
		return v, err
	}
	for e.isPunct(".") {
		line := e.peek().line
		e.p++
		if e.atTerm(false) {
			return Value{}, e.unexpected()
		}
		w, err := e.unary()
		if err != nil {
			return w, err
		}
		v = concatVals(v, w, e.file, line)
	}
	return v, nil
}

func toStr(v Value, file string, line int) (string, Value, bool) {
	switch v.kind {
	case String:
		return v.s, v, true
	case Int:
		return strconv.FormatInt(v.i, 10), v, true
	case Bool:
		if v.b {
			return "1", v, true
		}
		return "", v, true
	case Null:
		return "", v, true
	case Float:
		return "", unknown(file, line, "float to string conversion depends on PHP's precision setting"), false
	case Array:
		return "Array", v, true
	}
	return "", v, false
}

func concatVals(a, b Value, file string, line int) Value {
	sa, ua, oka := toStr(a, file, line)
	if !oka {
		return ua
	}
	sb, ub, okb := toStr(b, file, line)
	if !okb {
		return ub
	}
	if len(sa)+len(sb) > 4<<20 {
		return unknown(file, line, "string too long to evaluate")
	}
	return strVal(sa + sb)
}

func (e *evaluator) unary() (Value, error) {
	t := e.peek()
	if t.kind == tPunct && (t.text == "-" || t.text == "+" || t.text == "@") {
		if err := e.enter(); err != nil {
			return Value{}, err
		}
		defer e.leave()
		e.p++
		if e.atTerm(false) {
			return Value{}, e.unexpected()
		}
		v, err := e.unary()
		if err != nil || v.kind == Unknown {
			return v, err
		}
		switch t.text {
		case "@":
			return v, nil
		case "+":
			if v.kind == Int || v.kind == Float {
				return v, nil
			}
		case "-":
			switch v.kind {
			case Int:
				if v.i == math.MinInt64 {
					return Value{kind: Float, f: -float64(v.i)}, nil
				}
				return Value{kind: Int, i: -v.i}, nil
			case Float:
				return Value{kind: Float, f: -v.f}, nil
			}
		}
		return unknown(e.file, t.line, "unary %s on a %s cannot be evaluated", t.text, v.kind), nil
	}
	return e.primary()
}

// prefixWords start expressions that are not calls or constants.
var prefixWords = map[string]bool{"new": true, "clone": true, "print": true, "fn": true, "function": true,
	"static": true, "throw": true, "yield": true, "include": true, "include_once": true, "require": true,
	"require_once": true, "match": true, "list": true}

var casts = map[string]bool{"int": true, "integer": true, "bool": true, "boolean": true, "float": true,
	"double": true, "real": true, "string": true, "binary": true, "array": true, "object": true, "unset": true}

func (e *evaluator) primary() (Value, error) {
	t := e.peek()
	next := e.peekAt(1)
	nextIs := func(s string) bool { return next.kind == tPunct && next.text == s }
	switch t.kind {
	case tString:
		e.p++
		if t.reason != 0 {
			return unknown(e.file, t.line, "%s", strReasons[t.reason]), nil
		}
		return strVal(t.text), nil
	case tInt:
		e.p++
		return Value{kind: Int, i: t.ival()}, nil
	case tFloat:
		e.p++
		return Value{kind: Float, f: t.fval()}, nil
	case tVar:
		e.p++
		if e.atTerm(false) || e.isPunct(".") {
			return e.readVar(t), nil
		}
		return unknown(e.file, t.line, "$%s cannot be evaluated", t.text), nil
	case tPunct:
		switch t.text {
		case "(":
			if next.kind == tIdent && casts[strings.ToLower(next.text)] {
				if c := e.peekAt(2); c.kind == tPunct && c.text == ")" {
					e.p += 3
					if e.atTerm(false) {
						return Value{}, e.unexpected()
					}
					if err := e.enter(); err != nil {
						return Value{}, err
					}
					defer e.leave()
					start := e.p
					if _, err := e.unary(); err != nil {
						return Value{}, err
					}
					e.effects(start, e.p)
					return unknown(e.file, t.line, "(%s) cast cannot be evaluated", next.text), nil
				}
			}
			e.p++
			v, err := e.expr(false)
			if err != nil {
				return v, err
			}
			if !e.isPunct(")") {
				return v, e.unexpected()
			}
			e.p++
			return v, nil
		case "[":
			e.p++
			return e.array("]", t.line)
		}
		return unknown(e.file, t.line, "%s cannot be evaluated", describe(t, next)), nil
	case tIdent:
		name := strings.ToLower(strings.TrimPrefix(t.text, "\\"))
		plain := !strings.HasPrefix(t.text, "\\")
		switch {
		case name == "array" && plain && nextIs("("):
			e.p += 2
			return e.array(")", t.line)
		case (name == "true" || name == "false" || name == "null") && !nextIs("(") && !nextIs("::"):
			e.p++
			switch name {
			case "true":
				return Value{kind: Bool, b: true}, nil
			case "false":
				return Value{kind: Bool}, nil
			}
			return Value{}, nil
		case plain && name == "__dir__":
			e.p++
			if e.env.File == "" {
				return unknown(e.file, t.line, "__DIR__ is not known"), nil
			}
			return strVal(phpDirname(e.env.File)), nil
		case plain && name == "__file__":
			e.p++
			if e.env.File == "" {
				return unknown(e.file, t.line, "__FILE__ is not known"), nil
			}
			return strVal(e.env.File), nil
		case plain && name == "__line__":
			e.p++
			return Value{kind: Int, i: int64(t.line)}, nil
		case name == "oc" && nextIs("::") && e.peekAt(2).kind == tVar && e.peekAt(2).text == "SERVERROOT":
			e.p += 3
			if e.env.ServerRoot == "" {
				return unknown(e.file, t.line, "OC::$SERVERROOT is not known"), nil
			}
			return strVal(e.env.ServerRoot), nil
		case name == "dirname" && nextIs("("):
			return e.dirname()
		case prefixWords[name] && plain:
			// new Foo, fn() => ..., static fn, print ...: left to expr's skip.
			return unknown(e.file, t.line, "%s cannot be evaluated", t.text), nil
		case nextIs("("):
			e.p++
			start := e.p
			if err := e.skipBalanced(); err != nil {
				return Value{}, err
			}
			e.effects(start, e.p)
			return unknown(e.file, t.line, "%s() cannot be evaluated", t.text), nil
		}
		e.p++
		return unknown(e.file, t.line, "%s cannot be evaluated", describe(t, next)), nil
	}
	return Value{}, e.unexpected()
}

func (e *evaluator) readVar(t token) Value {
	v, ok := e.sc.Var(t.text)
	if !ok {
		return unknown(e.file, t.line, "$%s is not set", t.text)
	}
	return share(v)
}

func (e *evaluator) dirname() (Value, error) {
	t := e.peek()
	e.p += 2
	start := e.p - 1
	fail := func(why string) (Value, error) {
		e.p = start
		if err := e.skipBalanced(); err != nil {
			return Value{}, err
		}
		e.effects(start, e.p)
		return unknown(e.file, t.line, "dirname(): %s", why), nil
	}
	if e.isPunct(")") {
		return fail("no argument")
	}
	arg, err := e.expr(false)
	if err != nil {
		return arg, err
	}
	levels := int64(1)
	if e.isPunct(",") && !(e.peekAt(1).kind == tPunct && e.peekAt(1).text == ")") {
		e.p++
		lv, err := e.expr(false)
		if err != nil {
			return lv, err
		}
		n, ok := lv.Int()
		if !ok || n < 1 {
			return fail("levels is not a positive integer")
		}
		levels = n
	}
	if e.isPunct(",") {
		e.p++
	}
	if !e.isPunct(")") {
		return fail("unsupported arguments")
	}
	e.p++
	if arg.kind == Unknown {
		return arg, nil
	}
	s, ok := arg.Str()
	if !ok {
		return unknown(e.file, t.line, "dirname() of a %s is not evaluated", arg.kind), nil
	}
	for ; levels > 0; levels-- {
		d := phpDirname(s)
		if len(d) >= len(s) {
			s = d
			break
		}
		s = d
	}
	return strVal(s), nil
}

// phpDirname is PHP's dirname() on a Unix system, one level.
func phpDirname(p string) string {
	if p == "" {
		return ""
	}
	end := len(p) - 1
	for end >= 0 && p[end] == '/' {
		end--
	}
	if end < 0 {
		return "/"
	}
	for end >= 0 && p[end] != '/' {
		end--
	}
	if end < 0 {
		return "."
	}
	for end >= 0 && p[end] == '/' {
		end--
	}
	if end < 0 {
		return "/"
	}
	return p[:end+1]
}

func (e *evaluator) array(closer string, line int) (Value, error) {
	if err := e.enter(); err != nil {
		return Value{}, err
	}
	defer e.leave()
	a := newArr()
	for {
		if e.isPunct(closer) {
			e.p++
			break
		}
		el := e.peek()
		if el.kind == tPunct && (el.text == "..." || el.text == "&") {
			e.p++
			v, err := e.expr(false)
			if err != nil {
				return v, err
			}
			a.openUp(&Reason{File: e.file, Line: el.line, Why: fmt.Sprintf("array element with %s cannot be evaluated", el.text)})
		} else {
			kv, err := e.expr(true)
			if err != nil {
				return kv, err
			}
			if e.isPunct("=>") {
				e.p++
				v, err := e.expr(false)
				if err != nil {
					return v, err
				}
				if kv.kind == Unknown {
					a.openUp(&Reason{File: e.file, Line: el.line, Why: "array key: " + kv.r.Why})
				} else if k, why := toKey(kv); why != "" {
					a.openUp(&Reason{File: e.file, Line: el.line, Why: why})
				} else {
					a.set(k, v)
				}
			} else if k, ok := a.nextKey(); ok {
				a.set(k, kv)
			} else {
				a.appendUnknown(&Reason{File: e.file, Line: el.line, Why: "the index of an element cannot be known"})
			}
		}
		if e.isPunct(",") {
			e.p++
			continue
		}
		if !e.isPunct(closer) {
			return Value{}, e.unexpected()
		}
	}
	if a.size > maxSize {
		return unknown(e.file, line, "array too large to evaluate"), nil
	}
	return Value{kind: Array, a: a}, nil
}
